"""The image benchmark (benchmarks/images.py), end to end on tiny settings."""

import csv

import pytest

from benchmarks.images import main, merge_records, read_records


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


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_append_keeps_the_other_fits_and_replaces_the_repeated_ones(tmp_path):
    common = ["--quick", "--datasets", "digits", "--out", str(tmp_path), "--no-authors"]
    common += ["--augmentation", "off", "--methods", "DeepDPGMM"]
    main([*common, "--seeds", "0", "1"])
    paths = main([*common, "--seeds", "1", "--append"])

    rows = read_records(paths["csv"])
    # Seed 0 is kept from the first run; seed 1 was fitted again and replaced.
    assert [(row["seed"], row["command"].endswith("--append")) for row in rows] == [
        (0, False),
        (1, True),
    ]
    assert "(n=2)" in paths["md"].read_text()
    assert paths["png"].stat().st_size > 0


def test_merge_records_replaces_by_data_set_setting_method_and_seed():
    def record(seed, acc, augmentation="off"):
        return {"dataset": "digits", "augmentation": augmentation, "method": "DeepDPGMM"} | {
            "seed": seed,
            "acc": acc,
        }

    old = [record(0, 0.1), record(1, 0.2), record(0, 0.3, "affine")]
    merged = merge_records(old, [record(1, 0.9)])
    assert [(r["seed"], r["augmentation"], r["acc"]) for r in merged] == [
        (0, "off", 0.1),
        (0, "affine", 0.3),
        (1, "off", 0.9),
    ]
