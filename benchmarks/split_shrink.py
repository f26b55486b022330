"""How much DeepDPGMMClusterer's prior must shrink after its first E-step splits clusters.

Run from the repository root::

    python -m benchmarks.split_shrink --powers 0.5 1 2 --threads 1   # ~25 min on 2 cores
    python -m benchmarks.split_shrink --powers 1 --tiny              # a smoke test

When the first E-step splits K0 clusters into K1 (``split_valley``), the prior
scale is multiplied by ``(K0 / K1) ** SPLIT_SHRINK_POWER``, so that the next
E-steps do not merge the split clusters again. For each power this script
fits DeepDPGMMClusterer with its defaults on data sets where the split acts:
blobs-k100 of the suite (seeds 0 to 2) and make_blobs sets of 12 to 50
clusters that are not in the suite (standardised, seed 0). It records the
clusters of the first and the last E-step and the accuracy, and writes
``split-shrink-<powers>.csv``, then ``split-shrink.md`` and ``split-shrink.png``
(every such CSV of the output directory in one table and figure) to
``benchmarks/results/``.
"""

import argparse
import csv
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import make_blobs
from sklearn.preprocessing import StandardScaler

from skdiffclust import deep_dpgmm
from skdiffclust.metrics import clustering_accuracy

from .csv_rows import read_rows as read_csv_rows
from .measure import limit_threads
from .registry import TINY_DEEP_PARAMS, load_dataset
from .suite_datasets import SUITE_DATASETS

RESULTS = Path(__file__).parent / "results"
FIELDS = (
    "power",
    "dataset",
    "seed",
    "k_true",
    "k_first",
    "k_found",
    "acc",
    "cluster_scale",
    "fit_s",
)
_INT_FIELDS = ("seed", "k_true", "k_first", "k_found")
#: make_blobs sets outside the suite: (rows, features, centres).
BLOBS = ((3000, 10, 50), (2000, 20, 50), (4000, 5, 50), (2000, 10, 20), (1500, 8, 30), (600, 6, 12))


def cases(tiny):
    """``(name, seed, X, y)`` of every fit, one power's worth."""
    X, y = load_dataset(SUITE_DATASETS["blobs-k100"], tiny=tiny)
    found = [("blobs-k100", seed, X, y) for seed in (0, 1, 2)]
    for n_samples, n_features, centers in BLOBS[:1] if tiny else BLOBS:
        X, y = make_blobs(
            n_samples=200 if tiny else n_samples,
            n_features=n_features,
            centers=centers,
            random_state=0,
        )
        name = f"blobs {n_samples}x{n_features}, K {centers}"
        found.append((name, 0, StandardScaler().fit_transform(X).astype(np.float32), y))
    return found


def fit_one(power, name, seed, X, y, tiny):
    """Fit at ``SPLIT_SHRINK_POWER = power``; the result as a row of :data:`FIELDS`."""
    default = deep_dpgmm.SPLIT_SHRINK_POWER
    deep_dpgmm.SPLIT_SHRINK_POWER = power
    try:
        model = deep_dpgmm.DeepDPGMMClusterer(random_state=seed)
        if tiny:
            model.set_params(**TINY_DEEP_PARAMS)
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a count at the truncation is recorded, not fatal
            model.fit(X)
        fit_s = time.perf_counter() - started
    finally:
        deep_dpgmm.SPLIT_SHRINK_POWER = default
    history = model.n_clusters_history_
    return {
        "power": power,
        "dataset": name,
        "seed": seed,
        "k_true": len(np.unique(y)),
        "k_first": int(history[0]),
        "k_found": int(model.n_clusters_),
        "acc": round(float(clustering_accuracy(y, model.labels_)), 3),
        "cluster_scale": round(float(model.cluster_scale_), 3),
        "fit_s": round(fit_s, 1),
    }


def markdown(rows, command):
    """One table: clusters found (and accuracy) per data set and power."""
    powers = sorted({row["power"] for row in rows})
    keys = list(dict.fromkeys((row["dataset"], row["seed"], row["k_true"]) for row in rows))
    cell = {(row["dataset"], row["seed"], row["power"]): row for row in rows}
    lines = [
        "# Prior shrink after DeepDPGMMClusterer's split",
        "",
        f"`{command}`. Clusters found at the end (at the first E-step, after the split) and "
        "accuracy, per data set and `SPLIT_SHRINK_POWER`.",
        "",
        "| Data set | Seed | K true | " + " | ".join(f"power {p:g}" for p in powers) + " |",
        "|---|---|---|" + "---|" * len(powers),
    ]
    for dataset, seed, k_true in keys:
        cells = []
        for power in powers:
            row = cell.get((dataset, seed, power))
            cells.append(
                "" if row is None else f"{row['k_found']} ({row['k_first']}), ACC {row['acc']}"
            )
        lines.append(f"| {dataset} | {seed} | {k_true} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(rows, path):
    """K found over K true per data set, one marker per power."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys((row["dataset"], row["seed"]) for row in rows))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    powers = sorted({row["power"] for row in rows})
    for offset, power in zip(np.linspace(-0.2, 0.2, len(powers)), powers, strict=True):
        mine = [row for row in rows if row["power"] == power]
        x = [keys.index((row["dataset"], row["seed"])) + offset for row in mine]
        ratio = [row["k_found"] / row["k_true"] for row in mine]
        ax.scatter(x, ratio, label=f"power {power:g}", s=28)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.axhspan(0.8, 1.2, color="grey", alpha=0.12, label="within 20%")
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([f"{name}, seed {seed}" for name, seed in keys], rotation=30, ha="right")
    ax.set_ylabel("K found / K true")
    ax.set_title("DeepDPGMMClusterer after a split: prior scale times (K0/K1)^power")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_rows(paths):
    """The rows of the CSVs at ``paths``, with the power and the counts as numbers."""
    rows = []
    for path in paths:
        rows += read_csv_rows(path, integers=_INT_FIELDS, floats=("power",))
    return rows


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.split_shrink", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--powers", nargs="+", type=float, default=[0.5, 1.0, 2.0])
    parser.add_argument("--threads", type=int, default=None, help="threads per fit")
    parser.add_argument("--tiny", action="store_true", help="200 rows, tiny networks")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "-".join(f"{p:g}" for p in args.powers) + ("-tiny" if args.tiny else "")
    csv_path = args.out / f"split-shrink-{tag}.csv"
    with limit_threads(args.threads), open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for power in args.powers:
            for name, seed, X, y in cases(args.tiny):
                row = fit_one(power, name, seed, X, y, args.tiny)
                writer.writerow(row)
                handle.flush()
                print(", ".join(f"{key} {value}" for key, value in row.items()), flush=True)
    pattern = "split-shrink-*-tiny.csv" if args.tiny else "split-shrink-*[0-9].csv"
    command = "python -m benchmarks.split_shrink --threads 1 --powers ..."
    rows = read_rows(sorted(args.out.glob(pattern)))
    stem = "split-shrink-tiny" if args.tiny else "split-shrink"
    (args.out / f"{stem}.md").write_text(markdown(rows, command))
    figure(rows, args.out / f"{stem}.png")
    print(f"wrote {csv_path}, {stem}.md and {stem}.png")


if __name__ == "__main__":
    main()
