"""The prior-shrink study of DeepDPGMMClusterer's split (benchmarks/split_shrink.py)."""

import csv

from benchmarks import split_shrink
from skdiffclust import deep_dpgmm


def test_tiny_study_writes_one_row_per_fit_and_restores_the_power(tmp_path):
    split_shrink.main(["--powers", "1", "0.5", "--tiny", "--out", str(tmp_path)])
    assert deep_dpgmm.SPLIT_SHRINK_POWER == 1.0
    with open(tmp_path / "split-shrink-1-0.5-tiny.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    n_cases = len(split_shrink.cases(tiny=True))
    assert [float(row["power"]) for row in rows] == [1.0] * n_cases + [0.5] * n_cases
    assert all(int(row["k_true"]) == 100 for row in rows if row["dataset"] == "blobs-k100")
    assert all(1 <= int(row["k_found"]) <= int(row["k_first"]) for row in rows)
    report = (tmp_path / "split-shrink-tiny.md").read_text()
    assert "| power 0.5 | power 1 |" in report
    assert report.count("| blobs-k100 |") == 3
    assert (tmp_path / "split-shrink-tiny.png").stat().st_size > 0


def test_markdown_leaves_a_missing_fit_blank():
    # Rows as read_rows types them.
    rows = [
        {
            "power": 1.0,
            "dataset": "a",
            "seed": 0,
            "k_true": 5,
            "k_first": 6,
            "k_found": 5,
            "acc": "0.9",
        },
        {
            "power": 2.0,
            "dataset": "b",
            "seed": 0,
            "k_true": 4,
            "k_first": 4,
            "k_found": 4,
            "acc": "1.0",
        },
    ]
    text = split_shrink.markdown(rows, "cmd")
    assert "| a | 0 | 5 | 5 (6), ACC 0.9 |  |" in text
    assert "| b | 0 | 4 |  | 4 (4), ACC 1.0 |" in text
