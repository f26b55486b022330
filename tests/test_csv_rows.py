"""The benchmark scripts' shared CSV reader."""

import math

import pytest

from benchmarks.csv_rows import read_rows


def test_named_columns_are_typed_and_empty_cells_are_nan(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("name,seed,acc,auto\ndigits,0,0.875,True\niris,,,False\n")
    rows = read_rows(
        path,
        integers=("seed",),
        floats=("acc", "absent"),
        booleans=("auto",),
        empty_as_nan=True,
    )
    assert rows[0] == {"name": "digits", "seed": 0, "acc": 0.875, "auto": True}
    assert isinstance(rows[0]["seed"], int)
    assert math.isnan(rows[1]["seed"]) and math.isnan(rows[1]["acc"])
    assert rows[1]["auto"] is False
    assert "absent" not in rows[0]


def test_a_cell_that_is_not_a_number_is_named(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("name,seed\ndigits,0\niris,zero\n")
    with pytest.raises(ValueError, match=r"line 3: column 'seed' holds 'zero'"):
        read_rows(path, integers=("seed",))


def test_an_empty_number_cell_is_an_error_unless_asked_for_nan(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("name,acc\ndigits,\n")
    with pytest.raises(ValueError, match=r"line 2: column 'acc' holds '', not a number"):
        read_rows(path, floats=("acc",))
    assert math.isnan(read_rows(path, floats=("acc",), empty_as_nan=True)[0]["acc"])


def test_missing_required_columns_are_named_with_the_hint(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("name\ndigits\n")
    with pytest.raises(ValueError, match=r"lacks the columns seed, acc: rerun it\.$"):
        read_rows(path, required=("name", "seed", "acc"), missing_hint="rerun it.")
    with pytest.raises(ValueError, match=r"lacks the columns seed\.$"):
        read_rows(path, required=("seed",))
