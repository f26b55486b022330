"""The image benchmark (benchmarks/images.py), end to end on tiny settings."""

import csv

import pytest

from benchmarks.images import main


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_quick_run_writes_the_table(tmp_path, capsys):
    paths = main(["--quick", "--datasets", "digits", "--seeds", "0", "--out", str(tmp_path)])

    with open(paths["csv"], newline="") as file:
        rows = list(csv.DictReader(file))
    methods = {(row["method"], row["augmentation"]) for row in rows}
    assert methods == {
        ("ClusterDDPM", "affine"),
        ("ClusterDDPM", "off"),
        ("DeepDPGMM", "affine"),
        ("DeepDPGMM", "off"),
        ("authors", "off"),
    }
    assert all(0 <= float(row["acc"]) <= 1 and float(row["seconds"]) > 0 for row in rows)
    table = paths["md"].read_text()
    for measure in ("ClusterDDPM ACC", "DeepDPGMM ACC", "DeepDPGMM K found", "wall time"):
        assert measure in table
    assert "authors' ClusterDDPM, same wall time" in table
    assert "digits, (1, 8, 8), on" in table and "digits, (1, 8, 8), off" in table
    assert table in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_run_can_be_restricted_to_one_setting_and_method(tmp_path):
    paths = main(
        ["--quick", "--datasets", "digits", "--seeds", "0", "--out", str(tmp_path)]
        + ["--augmentation", "off", "--methods", "DeepDPGMM"]
    )
    with open(paths["csv"], newline="") as file:
        rows = list(csv.DictReader(file))
    # No authors' row: its wall time is that of the augmented ClusterDDPM.
    assert {(row["method"], row["augmentation"]) for row in rows} == {("DeepDPGMM", "off")}
