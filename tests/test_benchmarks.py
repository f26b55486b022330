"""The benchmark harness, run end to end on tiny settings so that it cannot rot."""

import csv
import math

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs

# The harness lives next to the package, not in it; pytest's ``pythonpath``
# setting in pyproject.toml puts the repository root on the path.
from benchmarks.measure import Worker, limit_threads
from benchmarks.registry import (
    DATASETS,
    METHODS,
    DataInfo,
    Dataset,
    load_dataset,
    unavailable_reason,
)
from benchmarks.report import RESULT_COLUMNS  # noqa: E402
from benchmarks.run import build_parser, main  # noqa: E402

AVAILABLE_METHODS = [name for name, method in METHODS.items() if unavailable_reason(method) is None]
# UMAP compiles itself with numba in every worker (about 20 s): its factory is
# tested below without fitting.
RUN_METHODS = [name for name in AVAILABLE_METHODS if name != "UMAP-GMM"]


def test_quick_run_on_tiny_settings(tmp_path, capsys):
    paths = main(["--quick", "--tiny", "--methods", *RUN_METHODS, "--out", str(tmp_path)])

    for suffix in ("csv", "md", "png"):
        assert paths[suffix].stat().st_size > 0
        assert (tmp_path / f"latest-quick-tiny.{suffix}").read_bytes() == paths[suffix].read_bytes()
    assert paths["png"].read_bytes().startswith(b"\x89PNG")

    with open(paths["csv"], newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert reader.fieldnames == RESULT_COLUMNS
    assert [(row["dataset"], row["method"], row["seed"]) for row in rows] == [
        ("digits", name, "0") for name in RUN_METHODS
    ]
    for row in rows:
        assert row["status"] == "ok", row
        for score in ("acc", "nmi", "ari"):
            assert -1 <= float(row[score]) <= 1
        for column in ("fit_seconds", "predict_samples_per_second", "peak_rss_mb"):
            assert math.isfinite(float(row[column])) and float(row[column]) > 0
        assert int(row["n_clusters_found"]) >= 1
        assert int(row["n_samples"]) == 200

    markdown = paths["md"].read_text()
    assert "| Method | ACC | NMI | ARI |" in markdown
    assert all(f"| {name} |" in markdown for name in RUN_METHODS)
    output = capsys.readouterr().out
    assert f"[{len(RUN_METHODS)}/{len(RUN_METHODS)}] digits" in output
    assert markdown in output


@pytest.mark.parametrize("name", AVAILABLE_METHODS)
def test_method_factories_build_clusterers(name):
    info = DataInfo(n_samples=200, n_features=64, n_classes=10)
    estimator = METHODS[name].make(info, 0, True)
    clone(estimator)
    assert hasattr(estimator, "fit_predict") and hasattr(estimator, "predict")


@pytest.mark.parametrize("name", [name for name in DATASETS if name != "mnist-5k"])
def test_tiny_datasets_are_small_and_stratified(name):
    X, y = load_dataset(name, tiny=True)
    assert X.shape[0] == len(y) == 200
    assert len(set(y)) == len(set(load_dataset(name)[1]))


def test_worker_runs_jobs_in_turn_and_recovers_from_a_timeout():
    with Worker(n_threads=1) as worker:
        first = worker.run("KMeans", "blobs", 0, tiny=True)
        stopped = worker.run("ClusterDDPM", "blobs", 0, tiny=True, timeout=0.01)
        # Entries work as well as names; a new child took over.
        after = worker.run(METHODS["KMeans"], DATASETS["blobs"], 1, tiny=True)
    assert first["status"] == after["status"] == "ok"
    assert (after["dataset"], after["method"], after["seed"]) == ("blobs", "KMeans", 1)
    assert stopped == {
        "dataset": "blobs",
        "method": "ClusterDDPM",
        "seed": 0,
        "status": "timeout after 0.01 s",
    }


def test_unavailable_entries_are_explained():
    missing = Dataset("missing", "", lambda: None, requires=("no_such_module_xyz",))
    assert "no_such_module_xyz" in unavailable_reason(missing)
    assert unavailable_reason(DATASETS["digits"]) is None


def test_cli_names_are_case_insensitive_and_checked(capsys):
    args = build_parser().parse_args(["--methods", "kmeans", "clusterddpm"])
    assert args.methods == ["KMeans", "ClusterDDPM"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--datasets", "imagenet"])
    assert "choose from digits" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["DeepDPGMM", "ClusterDDPM"])
def test_em_trajectory_follows_the_fit(method, capsys):
    from benchmarks.em_trajectory import main as trajectory_main
    from benchmarks.em_trajectory import trajectory

    model, rows = trajectory(method, "blobs", seed=0, params={"n_iter": 3}, tiny=True)
    # One row per E-step of the real loop: after pretraining and each iteration.
    assert [row["step"] for row in rows] == [0, 1, 2, 3]
    assert [row["clusters"] for row in rows] == model.history_["n_clusters"]
    np.testing.assert_allclose(
        [row["effective dim"] for row in rows], model.history_["latent_effective_dim"]
    )
    for row in rows:
        assert 0 <= row["acc"] <= 1 and 0 < row["top direction"] <= 1
        assert row["fresh clusters"] >= 1
        assert 0 <= row["class-started acc"] <= 1 and np.isfinite(row["its log-lik gap"])
    # The subclass keeps the estimator's name and parameters.
    assert type(model).__name__ == method.replace("DeepDPGMM", "DeepDPGMMClusterer")
    assert model.get_params()["n_iter"] == 3

    printed = trajectory_main(
        ["--method", method, "--dataset", "digits", "--n-iter", "1", "--tiny"]
    )
    output = capsys.readouterr().out
    assert len(printed) == 2
    assert "| step | clusters | acc |" in output


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_class_started_mixture(covariance_type):
    from benchmarks.em_trajectory import class_started_mixture

    Z, y = make_blobs(n_samples=300, centers=3, cluster_std=0.5, random_state=0)
    # Classes that are the blobs: the class start and k-means reach the same optimum.
    acc, gap = class_started_mixture(Z, y, covariance_type, seed=0)
    assert acc == 1.0 and abs(gap) < 1e-6
    # Classes unrelated to the blobs: no mixture optimum follows them, and the
    # optimum the class start falls into is no more likely than k-means' one.
    y_random = np.random.RandomState(0).randint(3, size=len(y))
    acc, gap = class_started_mixture(Z, y_random, covariance_type, seed=0)
    assert acc < 0.5 and gap <= 1e-6


def test_distributed_fit_table_pairs_the_process_counts(tmp_path, monkeypatch):
    from benchmarks import distributed_fit

    monkeypatch.setattr(distributed_fit, "RESULTS", tmp_path)
    rows = [
        {
            "method": method,
            "seed": seed,
            "processes": processes,
            "batch_per_rank": 128 // processes,
            "acc": acc,
            "n_clusters": 10,
            "seconds": 10.0 * processes,
            "mb_sent_per_epoch": 0.0 if processes == 1 else 20.0,
        }
        for method, accs in {"DeepDPGMM": [0.8, 0.9, 0.7, 0.8]}.items()
        for (seed, processes), acc in zip([(0, 1), (0, 2), (1, 1), (1, 2)], accs, strict=True)
    ]
    table = distributed_fit._write(rows, "test")
    # Means over the seeds: 0.75 with one process, 0.85 with two, twice the time.
    assert "| DeepDPGMM | 2 | 0.750 | 0.850 | +0.100 | 10 | 20 | 2.00 |" in table
    assert (tmp_path / "test.md").read_text().strip() == table
    assert len((tmp_path / "test.csv").read_text().splitlines()) == 5


def test_limit_threads_caps_torch_and_blas_in_the_block_only():
    import torch
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    with limit_threads(1):
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == before
    with limit_threads(None):
        assert torch.get_num_threads() == before
