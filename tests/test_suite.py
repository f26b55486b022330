"""The broad benchmark suite: its data sets, its comparisons and a tiny run end to end."""

import csv
import re
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks import report
from benchmarks.measure import CODE_VERSION
from benchmarks.registry import DataInfo, load_dataset, unavailable_reason
from benchmarks.report import (
    cluster_counts,
    code_version,
    k_tolerance,
    markdown_cluster_counts,
    markdown_code_versions,
    markdown_versus_best,
    markdown_wins_ties_losses,
    read_csv,
    summarize,
    versus_best_reference,
    wins_ties_losses,
    write_csv,
)
from benchmarks.suite import (
    QUICK_DATASETS,
    SUITE_METHODS,
    _in_order,
    build_parser,
    default_methods,
    main,
)
from benchmarks.suite_datasets import SUITE_DATASETS
from skdiffclust import ClusterDDPM, DeepDPGMMClusterer


@pytest.fixture
def no_network(monkeypatch):
    """Make any attempt to open a network connection fail."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted by a loader")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", list(SUITE_DATASETS))
def test_loaders_are_offline_and_documented(name, no_network):
    dataset = SUITE_DATASETS[name]
    reason = unavailable_reason(dataset)
    if reason is not None:
        pytest.skip(reason)
    X, y = load_dataset(dataset)
    assert X.dtype == np.float32 and X.ndim == 2 and np.isfinite(X).all()
    assert np.issubdtype(y.dtype, np.integer)
    n_classes = dataset.shape[2]
    assert X.shape + (n_classes,) == dataset.shape
    assert set(np.unique(y)) == set(range(n_classes))
    assert dataset.kind and dataset.source and dataset.description
    if dataset.image_shape is not None:
        assert np.prod(dataset.image_shape) == X.shape[1]
    if dataset.kind == "image":
        assert X.min() >= 0 and X.max() <= 1

    X_tiny, y_tiny = load_dataset(dataset, tiny=True)
    assert len(X_tiny) == len(y_tiny) == min(200, len(X))
    assert len(np.unique(y_tiny)) == n_classes


def test_suite_covers_its_families():
    shapes = [dataset.shape for dataset in SUITE_DATASETS.values()]
    kinds = {dataset.kind.split(":")[0] for dataset in SUITE_DATASETS.values()}
    assert len(SUITE_DATASETS) >= 12
    assert {"image", "tabular", "time series", "synthetic"} <= kinds
    assert min(n for n, _, _ in shapes) <= 150 and max(n for n, _, _ in shapes) >= 50_000
    assert min(d for _, d, _ in shapes) <= 2 and max(d for _, d, _ in shapes) >= 500
    assert min(k for _, _, k in shapes) == 2 and max(k for _, _, k in shapes) >= 100
    assert SUITE_DATASETS["digits-8x8"].image_shape == (1, 8, 8)
    assert set(QUICK_DATASETS) <= set(SUITE_DATASETS)


@pytest.mark.parametrize(
    "name, estimator, pretrain_epochs",
    [("ClusterDDPM", ClusterDDPM(), 100), ("DeepDPGMM", DeepDPGMMClusterer(), 150)],
)
def test_deep_factories_apply_image_shape_and_epoch_budget(name, estimator, pretrain_epochs):
    info = DataInfo(50_000, 64, 8, image_shape=(1, 8, 8), epoch_scale=0.1)
    model = SUITE_METHODS[name].make(info, 0, False)
    assert model.get_params()["image_shape"] == (1, 8, 8)
    assert model.pretrain_epochs == round(pretrain_epochs * 0.1)
    assert model.n_iter == round(estimator.n_iter * 0.1)
    # Without a budget the defaults stay; tiny runs override the budget.
    default = SUITE_METHODS[name].make(DataInfo(100, 4, 3), 0, False).get_params()
    assert {key: default[key] for key in ("pretrain_epochs", "n_iter", "image_shape")} == {
        key: estimator.get_params()[key] for key in ("pretrain_epochs", "n_iter", "image_shape")
    }
    assert SUITE_METHODS[name].make(info, 0, True).pretrain_epochs == 2


def test_the_budget_scales_the_epochs_auto_would_run():
    # 300 rows in batches of 128 are 3 steps: "auto" runs 500 epochs there.
    info = DataInfo(300, 4, 3, epoch_scale=0.1)
    assert SUITE_METHODS["DeepDPGMM"].make(info, 0, False).pretrain_epochs == 50


def test_the_start_variant_runs_when_named():
    info = DataInfo(100, 4, 3)
    assert SUITE_METHODS["ClusterDDPM"].make(info, 0, False).init_params == "umap-input"
    assert SUITE_METHODS["ClusterDDPM-ward"].make(info, 0, False).init_params == "ward"
    variant = SUITE_METHODS["ClusterDDPM-umap-codes"].make(info, 0, False)
    assert variant.init_params == "umap"
    assert not {"ClusterDDPM-ward", "ClusterDDPM-umap-codes"} & set(default_methods())
    assert {"ClusterDDPM", "DeepDPGMM", "KMeans"} <= set(default_methods())
    # The report lists the methods in the suite's order, whatever order they ran in.
    records = _records({("a", "KMeans"): [0.5], ("a", "ClusterDDPM-ward"): [0.6]})
    records += _records({("a", "ClusterDDPM"): [0.7]})
    assert [r["method"] for r in _in_order(records, [])] == [
        "ClusterDDPM",
        "ClusterDDPM-ward",
        "KMeans",
    ]


def _records(table, method_k=None):
    """Records of ``{(dataset, method): [acc of each seed]}``, ARI = ACC - 0.1."""
    records = []
    for (dataset, method), scores in table.items():
        for seed, acc in enumerate(scores):
            record = {"dataset": dataset, "method": method, "seed": seed, "n_classes": 4}
            if acc is None:
                records.append({**record, "status": "error: boom"})
                continue
            record.update(acc=acc, nmi=acc, ari=acc - 0.1, n_clusters_found=4, status="ok")
            for column in ("fit_seconds", "predict_samples_per_second"):
                record[column] = 1.0
            record.update(peak_rss_mb=1.0, fit_memory_mb=1.0)
            records.append(record)
    return records


# Means: a: DDPM 0.80 vs KMeans 0.70 / GMM 0.805; b: 0.50 vs 0.60 / 0.30;
# c: 0.905 vs 0.90 / 0.95; d: the DDPM failed everywhere (left out).
TABLE = {
    ("a", "ClusterDDPM"): [0.78, 0.82],
    ("a", "KMeans"): [0.70, 0.70],
    ("a", "GMM-PCA50"): [0.80, 0.81],
    ("b", "ClusterDDPM"): [0.50, None],
    ("b", "KMeans"): [0.60, 0.60],
    ("b", "GMM-PCA50"): [0.30, 0.30],
    ("c", "ClusterDDPM"): [0.905, 0.905],
    ("c", "KMeans"): [0.90, 0.90],
    ("c", "GMM-PCA50"): [0.95, 0.95],
    ("d", "ClusterDDPM"): [None, None],
    ("d", "KMeans"): [0.5, 0.5],
    ("d", "GMM-PCA50"): [0.5, 0.5],
}


def test_wins_ties_losses_on_a_hand_made_table():
    summary = summarize(_records(TABLE))
    rows = wins_ties_losses(summary, ["ClusterDDPM"], ["KMeans", "GMM-PCA50", "ClusterDDPM"])
    by_baseline = {row["baseline"]: row for row in rows}
    assert list(by_baseline) == ["KMeans", "GMM-PCA50"]  # no pair with itself
    # Against KMeans: a won (+0.10), b lost (-0.10), c tied (+0.005); d left out.
    assert by_baseline["KMeans"]["acc"] == (1, 1, 1)
    assert by_baseline["KMeans"]["ari"] == (1, 1, 1)
    assert by_baseline["KMeans"]["n_datasets"] == 3
    # Against GMM: a tied (-0.005), b won (+0.20), c lost (-0.045).
    assert by_baseline["GMM-PCA50"]["acc"] == (1, 1, 1)
    # A wider margin turns a and b into ties.
    wide = wins_ties_losses(summary, ["ClusterDDPM"], ["KMeans"], margin=0.2)
    assert wide[0]["acc"] == (0, 3, 0)
    markdown = "\n".join(markdown_wins_ties_losses(rows))
    assert "| ClusterDDPM | KMeans | 3 | 1/1/1 | 1/1/1 |" in markdown
    assert "within 0.01" in markdown


def test_versus_best_reference_on_a_hand_made_table():
    summary = summarize(_records(TABLE))
    rows = {
        row["dataset"]: row
        for row in versus_best_reference(summary, ["ClusterDDPM"], ["KMeans", "GMM-PCA50"])
    }
    assert (rows["a"]["reference"], rows["b"]["reference"]) == ("GMM-PCA50", "KMeans")
    assert rows["a"]["ClusterDDPM"]["difference"] == pytest.approx(-0.005)
    assert not rows["a"]["ClusterDDPM"]["at_least"]
    assert rows["b"]["ClusterDDPM"]["difference"] == pytest.approx(-0.10)
    assert rows["c"]["ClusterDDPM"]["difference"] == pytest.approx(-0.045)
    assert "ClusterDDPM" not in rows["d"]  # it failed there
    markdown = "\n".join(markdown_versus_best(list(rows.values()), ["ClusterDDPM"], ["KMeans"]))
    assert "| a | 0.805 (GMM-PCA50) | 0.800 (0.005 below) |" in markdown
    assert "at least as good on 0 of 3 data sets; when below, by 0.045 (median)" in markdown


def test_cluster_counts_and_their_tolerance():
    assert [k_tolerance(k) for k in (2, 5, 10, 100)] == [1, 1, 2, 20]
    found = {"ten": (10, [10, 9, 12]), "three": (3, [1, 1, 2]), "hundred": (100, [30, 30, 30])}
    records = [
        {
            "dataset": name,
            "method": "DeepDPGMM",
            "seed": seed,
            "n_classes": n_classes,
            "n_clusters_found": k,
            "status": "ok",
        }
        for name, (n_classes, ks) in found.items()
        for seed, k in enumerate(ks)
    ]
    records.append({"dataset": "ten", "method": "DeepDPGMM", "seed": 3, "status": "timeout"})
    records.append({**records[0], "method": "KMeans", "n_clusters_found": 1})
    rows = {row["dataset"]: row for row in cluster_counts(records, "DeepDPGMM")}
    assert rows["ten"]["found"] == [10, 9, 12] and rows["ten"]["within"]
    assert rows["ten"]["seeds_within"] == 3  # 12 is 2 away, the tolerance of K = 10
    assert rows["three"]["mean"] == pytest.approx(4 / 3) and not rows["three"]["within"]
    assert rows["three"]["seeds_within"] == 1
    assert not rows["hundred"]["within"] and rows["hundred"]["seeds_within"] == 0
    markdown = "\n".join(markdown_cluster_counts(list(rows.values()), "DeepDPGMM"))
    assert "| ten | 10 | 10, 9, 12 | 10.3 | 2 | yes | 3 of 3 |" in markdown
    assert "within tolerance on 1 of 3 data sets" in markdown


def test_cli_defaults():
    args = build_parser().parse_args(["--quick", "--methods", "kmeans", "dec"])
    assert args.methods == ["KMeans", "DEC"] and args.datasets is None and args.tiny is False
    assert args.timeout > 0


def test_tiny_suite_run_writes_the_reports(tmp_path, capsys):
    methods = ["ClusterDDPM", "DeepDPGMM", "KMeans"]
    argv = ["--tiny", "--datasets", "iris", "blobs-2d", "--seeds", "0", "--threads", "1"]
    paths = main([*argv, "--methods", *methods, "DEC", "--out", str(tmp_path)])

    for suffix in ("csv", "md", "png"):
        assert paths[suffix].name.startswith("suite-") and paths[suffix].stat().st_size > 0
        latest = tmp_path / f"suite-latest-full-tiny.{suffix}"
        assert latest.read_bytes() == paths[suffix].read_bytes()
    assert paths["png"].read_bytes().startswith(b"\x89PNG")
    with open(paths["csv"], newline="") as file:
        rows = list(csv.DictReader(file))
    # DEC is either skipped (no ClustPy) or run; the others ran everywhere.
    ran = [(row["dataset"], row["method"]) for row in rows if row["method"] != "DEC"]
    assert ran == [(name, method) for name in ("iris", "blobs-2d") for method in methods]
    assert all(row["status"] == "ok" for row in rows), rows
    # Every fit names the code it ran, and the report says which.
    assert {row["code"] for row in rows} == {CODE_VERSION}
    assert f"Code: `{CODE_VERSION}` for every fit." in paths["md"].read_text()

    markdown = paths["md"].read_text()
    for heading in (
        "## Data sets",
        "## ACC",
        "## Wins, ties and losses",
        "## Number of clusters found by DeepDPGMM",
        "## Against the best of KMeans",
    ):
        assert heading in markdown
    assert "| iris | 150 | 4 | 3 | tabular |" in markdown

    # The report of the CSV alone has the same tables.
    report = main(["--report", str(paths["csv"])])
    assert report["md"] == paths["md"] and paths["png"].read_bytes().startswith(b"\x89PNG")
    tables = report["md"].read_text()
    section = slice(markdown.index("## ACC"), markdown.index("## Fit time"))
    assert tables[tables.index("## ACC") : tables.index("## Fit time")] == markdown[section]
    if unavailable_reason(SUITE_METHODS["DEC"]) is not None:
        assert "Skipped DEC: clustpy.deep is not importable" in markdown
        assert "note: skipping method DEC" in capsys.readouterr().out


def test_docs_list_every_data_set_with_its_shape():
    page = (Path(__file__).parents[1] / "docs" / "benchmark_suite.rst").read_text()
    for name, dataset in SUITE_DATASETS.items():
        n, d, k = dataset.shape
        assert f"   * - ``{name}``\n     - {n:,}\n     - {d}\n     - {k}\n" in page, name


def test_resume_runs_only_the_fits_that_did_not_succeed(tmp_path, capsys):
    argv = ["--tiny", "--datasets", "iris", "--methods", "KMeans", "--seeds", "0", "1"]
    paths = main([*argv, "--out", str(tmp_path)])
    rows = read_csv(paths["csv"])
    rows[1].update(status="timeout after 1 s", acc=float("nan"))
    write_csv(rows, paths["csv"])

    capsys.readouterr()
    resumed = main([*argv, "--resume", str(paths["csv"])])
    assert resumed["csv"] == paths["csv"]
    assert "x 2 seeds, 1 fits to run" in capsys.readouterr().out
    again = read_csv(paths["csv"])
    assert [(row["seed"], row["status"]) for row in again] == [(0, "ok"), (1, "ok")]
    assert again[1]["acc"] == again[0]["acc"]


def test_code_version_names_the_commit_and_marks_changes(monkeypatch):
    version = code_version()
    assert re.fullmatch(r"[0-9a-f]{12}(\+changes)?|skdiffclust \S+", version), version
    # A commit, marked when git reports changes to the measured files.
    for status, expected in (("", "0123456789ab"), (" M skdiffclust/x.py", "0123456789ab+changes")):
        monkeypatch.setattr(report.subprocess, "run", _fake_git("0123456789ab", status))
        assert code_version() == expected
    # Outside a git checkout, the package's version.
    monkeypatch.setattr(report.subprocess, "run", _raise(FileNotFoundError("git")))
    assert code_version().startswith("skdiffclust ")


def _fake_git(commit, status):
    def run(command, **kwargs):
        assert command[:3] == ["git", "-C", str(Path(report.__file__).resolve().parent.parent)]
        if command[3] == "status":
            assert command[-len(report.MEASURED_CODE) :] == list(report.MEASURED_CODE)
        out = commit if command[3] == "rev-parse" else status
        return subprocess.CompletedProcess(command, 0, stdout=out + "\n")

    return run


def _raise(error):
    def run(*args, **kwargs):
        raise error

    return run


def test_report_lines_name_the_code_of_the_fits():
    assert markdown_code_versions([{"code": "abc"}, {"code": "abc"}]) == [
        "",
        "Code: `abc` for every fit.",
    ]
    assert markdown_code_versions([{}, {"code": ""}]) == []  # an older CSV
    (line,) = markdown_code_versions([{"code": "abc"}, {"code": "def+changes"}, {"code": ""}])[1:]
    assert line.startswith("Code: `abc` (1 fit), `def+changes` (1 fit).")
    assert "No code is recorded for 1 fit" in line
    assert "uncommitted changes" in line
