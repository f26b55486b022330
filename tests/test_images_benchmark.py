"""The image benchmark (benchmarks/images.py), end to end on tiny settings."""

import csv

import numpy as np
import pytest
import torch

import benchmarks.images as images
import benchmarks.run as run
from benchmarks.images import main, merge_records, read_records
from benchmarks.registry import Method


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_quick_run_writes_the_table(tmp_path, capsys):
    paths = main(
        ["--quick", "--datasets", "digits", "--seeds", "0", "--out", str(tmp_path), "--peers"]
    )

    with open(paths["csv"], newline="") as file:
        rows = list(csv.DictReader(file))
    methods = {(row["method"], row["augmentation"]) for row in rows}
    assert methods == {
        ("ClusterDDPM", "affine"),
        ("ClusterDDPM", "off"),
        ("DeepDPGMM", "affine"),
        ("DeepDPGMM", "off"),
        ("authors", "off"),
        ("unet", "affine"),
    }
    assert all(0 <= float(row["acc"]) <= 1 and float(row["seconds"]) > 0 for row in rows)
    table = paths["md"].read_text()
    for measure in ("ClusterDDPM ACC", "DeepDPGMM ACC", "DeepDPGMM K found", "wall time"):
        assert measure in table
    assert "authors' ClusterDDPM, same wall time" in table
    assert "ClusterDDPM with the U-Net denoiser, same wall time" in table
    # The U-Net row splits its time budget between pretraining and EM.
    epochs = {r["method"]: (int(r["pretrain_epochs"]), int(r["n_iter"])) for r in rows}
    assert epochs["unet"][0] >= 1 and epochs["unet"][1] >= 1
    assert "digits, (1, 8, 8), on" in table and "digits, (1, 8, 8), off" in table
    assert table in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_run_can_be_restricted_to_one_setting_and_method(tmp_path):
    paths = main(
        ["--quick", "--datasets", "digits", "--seeds", "0", "--out", str(tmp_path)]
        + ["--augmentation", "off", "--methods", "DeepDPGMM", "--peers"]
    )
    with open(paths["csv"], newline="") as file:
        rows = list(csv.DictReader(file))
    # No authors' row: its wall time is that of the augmented ClusterDDPM.
    assert {(row["method"], row["augmentation"]) for row in rows} == {("DeepDPGMM", "off")}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_equal_time_rows_can_be_chosen(tmp_path):
    paths = main(
        ["--quick", "--datasets", "digits", "--seeds", "0", "--out", str(tmp_path)]
        + ["--augmentation", "on", "--methods", "ClusterDDPM", "--peers", "--equal-time", "unet"]
    )
    rows = read_records(paths["csv"])
    assert [(r["method"], r["augmentation"]) for r in rows] == [
        ("ClusterDDPM", "affine"),
        ("unet", "affine"),
    ]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_append_keeps_the_other_fits_and_replaces_the_repeated_ones(tmp_path):
    common = ["--quick", "--datasets", "digits", "--out", str(tmp_path), "--no-authors"]
    common += ["--augmentation", "off", "--methods", "DeepDPGMM", "--peers"]
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


class _FakePeer:
    """Stands in for a ClustPy estimator: its parameters and ``labels_``."""

    def __init__(self, n_clusters, seed):
        self.n_clusters, self.seed = n_clusters, seed

    def get_params(self):
        return {"pretrain_epochs": 3, "clustering_epochs": 2}

    def fit(self, X):
        torch.set_num_threads(2)  # as numba's threading layer does when it starts
        self.labels_ = np.random.default_rng(self.seed).integers(self.n_clusters, size=len(X))
        return self


def test_peers_join_the_run_and_its_table_when_clustpy_is_installed(tmp_path, monkeypatch):
    fake = Method("DEC", "fake DEC", lambda info, seed, tiny: _FakePeer(info.n_classes, seed))
    monkeypatch.setitem(images.PEER_METHODS, "DEC", fake)
    monkeypatch.setattr(run, "unavailable_reason", lambda method: None)
    threads = torch.get_num_threads()
    try:
        paths = main(
            ["--quick", "--datasets", "digits", "--seeds", "0", "1", "--out", str(tmp_path)]
            + ["--methods", "--peers", "DEC", "--threads", "1"]
        )
    finally:
        torch.set_num_threads(threads)

    rows = read_records(paths["csv"])
    assert [(r["method"], r["augmentation"], r["seed"]) for r in rows] == [
        ("DEC", "off", 0),
        ("DEC", "off", 1),
    ]
    # Each fit runs with --threads, though the previous one changed the count.
    assert [(r["pretrain_epochs"], r["n_iter"], r["n_clusters"], r["threads"]) for r in rows] == [
        (3, 2, 10, 1)
    ] * 2
    table = paths["md"].read_text()
    assert "| digits, (1, 8, 8), off | ClustPy DEC (flattened images) ACC |" in table
    assert "| report |" in table


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_peers_are_skipped_with_a_note_without_clustpy(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run, "unavailable_reason", lambda method: "clustpy is missing")
    paths = main(
        ["--quick", "--datasets", "digits", "--seeds", "0", "--out", str(tmp_path)]
        + ["--augmentation", "off", "--methods", "DeepDPGMM", "--peers", "DEC", "N2D"]
    )

    out = capsys.readouterr().out
    assert "skipping ClustPy's DEC: clustpy is missing" in out
    assert "skipping ClustPy's N2D: clustpy is missing" in out
    assert {r["method"] for r in read_records(paths["csv"])} == {"DeepDPGMM"}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_variant_runs_under_its_own_name_with_its_settings(tmp_path, monkeypatch):
    pytest.importorskip("umap")
    built = []
    build = images.build
    monkeypatch.setattr(images, "build", lambda *a, **k: built.append(build(*a, **k)) or built[-1])
    paths = main(
        ["--quick", "--datasets", "digits", "--seeds", "0", "--out", str(tmp_path), "--peers"]
        + ["--augmentation", "off", "--methods", "ClusterDDPM-umap"]
    )
    assert [(r["method"], r["augmentation"]) for r in read_records(paths["csv"])] == [
        ("ClusterDDPM-umap", "off")
    ]
    assert [(m.init_params, m.denoiser) for m in built] == [("umap", "mlp")]
    assert "| digits, (1, 8, 8), off | ClusterDDPM-umap ACC |" in paths["md"].read_text()


def test_a_variant_is_held_to_its_base_methods_targets():
    record = {
        "dataset": "mnist5k",
        "image_shape": "(1, 28, 28)",
        "augmentation": "affine",
        "seed": 0,
        "acc": 0.91,
        "seconds": 60.0,
        "pretrain_epochs": 250,
        "n_iter": 30,
    }
    rows = images.summary_rows([record | {"method": m} for m in ("ClusterDDPM-umap", "unet")])
    targets = {measure: target for _, measure, _, target in rows}
    assert targets["ClusterDDPM-umap ACC"] == images.TARGETS["ClusterDDPM ACC"]
    assert targets["ClusterDDPM-umap wall time per fit"] == images.TIME_TARGET
    assert targets[f"{images.LABELS.get('unet', 'unet')} ACC"] == "report"


def test_the_ward_variant_keeps_the_former_default_start():
    shape = (1, 8, 8)
    assert images.build("ClusterDDPM", shape, None, 0, True).init_params == "umap-input"
    ward = images.build("ClusterDDPM-ward", shape, None, 0, True)
    assert (ward.init_params, ward.denoiser) == ("ward", "mlp")


def test_an_older_csv_is_named_with_its_missing_columns(tmp_path):
    path = tmp_path / "images.csv"
    path.write_text("dataset,method,seed,acc\ndigits,DeepDPGMM,0,0.9\n")
    with pytest.raises(ValueError, match="lacks the columns .*threads, command.*without --append"):
        read_records(path)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_fit_records_the_epochs_it_ran_not_auto(monkeypatch):
    # The CSV's pretrain_epochs column is read back as an integer.
    from _estimators import small

    from skdiffclust import DeepDPGMMClusterer, deep_dpgmm

    monkeypatch.setattr(deep_dpgmm, "AUTO_PRETRAIN_EPOCHS", 2)
    monkeypatch.setattr(deep_dpgmm, "MIN_PRETRAIN_STEPS", 6)
    X = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    model = small(DeepDPGMMClusterer, pretrain_epochs="auto", n_iter=1)
    record = images.fit_one(model, X, np.zeros(60, dtype=int))
    assert record["pretrain_epochs"] == model.pretrain_epochs_ == 3  # 2 steps of 32 rows
