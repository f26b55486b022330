"""How the Dirichlet process's cluster count depends on its prior scale, data set by data set.

Run from the repository root::

    python -m benchmarks.dp_scale --threads 1                 # the suite's data sets: ~1 hour
    python -m benchmarks.dp_scale --datasets iris wine --tiny  # a smoke test
    python -m benchmarks.dp_scale --report A/dp-scale.csv B/dp-scale.csv  # merge runs

Runs given disjoint ``--datasets`` and their own ``--out`` can go in parallel;
``--report`` then merges their CSVs into one report, in the suite's order.

DeepDPGMMClusterer's count is decided at its first E-step: the codes after
pretraining are fitted with the truncated Dirichlet-process mixture, and
training rarely changes the count afterwards. For each data set of the suite,
this script pretrains the estimator with its defaults (``n_iter=0``), then
fits the first E-step's mixture on the same codes at every ``cluster_scale``
of a grid and records the number of clusters. It also records what four rules
for choosing the scale from the codes alone would pick:

- ``auto``: the estimator's default rule (a function of the number of rows);
- ``held-out``: the scale whose mixture gives the best mean log-likelihood of
  held-out codes (3 folds);
- ``evidence``: empirical Bayes, the scale under which the mixture's hard
  partition has the largest closed-form marginal likelihood (Normal-Wishart
  clusters, the Dirichlet process's partition prior);
- ``stability``: the scale whose mixtures fitted on two random halves of the
  codes label all codes most alike (adjusted Rand index, two splits), among
  scales that keep at least 2 clusters.

It writes ``dp-scale.csv`` (one row per data set and scale), ``dp-scale.md``
and ``dp-scale.png`` (K found over K true, per data set and scale) to
``benchmarks/results/``.
"""

import argparse
import csv
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.special import gammaln, multigammaln
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import KFold

from skdiffclust._mixture import make_mixture
from skdiffclust.callbacks import Callback
from skdiffclust.deep_dpgmm import auto_cluster_scale
from skdiffclust.metrics import clustering_accuracy

from .csv_rows import read_rows as read_csv_rows
from .measure import limit_threads
from .registry import METHODS, load_dataset
from .report import k_tolerance
from .suite_datasets import SUITE_DATASETS

RESULTS = Path(__file__).parent / "results"
#: The grid of prior scales: geometric, factor sqrt(2).
SCALES = tuple(float(s) for s in np.round(0.25 * np.sqrt(2.0) ** np.arange(8), 2))
RULES = ("auto", "held-out", "evidence", "stability")
#: The study fits at most this many codes (a random subset of larger sets).
MAX_CODES = 5000


def pretrained_codes(dataset, seed, tiny):
    """The estimator (defaults, pretrained, first E-step done) and its codes of ``dataset``."""
    X, y = load_dataset(dataset, tiny)
    estimator = METHODS["DeepDPGMM"].make(dataset.info(X, y), seed, tiny)
    codes = []

    class FirstCodes(Callback):
        def on_e_step_end(self, estimator, *, iteration, latents, mixture, n_clusters):
            if iteration == 0:
                codes.append(np.asarray(latents, dtype=np.float64))

    estimator.set_params(n_iter=0, callbacks=[FirstCodes()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X)
    Z = codes[0]
    if len(Z) > MAX_CODES:
        keep = np.random.default_rng(seed).choice(len(Z), MAX_CODES, replace=False)
        Z, y = Z[keep], y[keep]
    return estimator, Z, y


def first_e_step(estimator, Z, scale, seed):
    """The first E-step's mixture fitted on ``Z`` at prior scale ``scale``.

    The estimator's own E-step (with its truncation growth and its split of
    merged clusters), on a copy with only ``cluster_scale`` changed.
    """
    copy = clone(estimator).set_params(cluster_scale=scale, callbacks=None)
    # The fitted state the E-step reads: the code size (capped at the input's,
    # so not the parameter's) and the attributes the estimator declares its
    # E-step sets (among them the prior shrink that a split multiplies).
    copy.network_spec_ = estimator.network_spec_
    copy.__dict__.update({name: getattr(estimator, name) for name in estimator._e_step_attributes})
    copy.cluster_scale_ = scale
    copy.n_components_ = min(int(copy.n_components), len(Z))
    mixture = make_mixture(random_state=np.random.RandomState(seed), **copy._mixture_params())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return copy._fit_e_step_mixture(mixture, Z, None)


def log_marginal_likelihood(Z, covariance_prior, degrees_of_freedom, mean_prior, kappa=1.0):
    """log p(Z) of one Gaussian cluster under the Normal-Wishart prior scikit-learn uses.

    The precision is Wishart with ``degrees_of_freedom`` and scale matrix
    ``inv(covariance_prior)``; the mean, given it, is Gaussian around
    ``mean_prior`` with ``kappa`` pseudo-rows.
    """
    n, d = Z.shape
    centre = Z.mean(axis=0)
    scatter = (Z - centre).T @ (Z - centre)
    kappa_n, nu_n = kappa + n, degrees_of_freedom + n
    posterior = (
        covariance_prior
        + scatter
        + kappa * n / kappa_n * np.outer(centre - mean_prior, centre - mean_prior)
    )
    return (
        -n * d / 2 * np.log(np.pi)
        + multigammaln(nu_n / 2, d)
        - multigammaln(degrees_of_freedom / 2, d)
        + degrees_of_freedom / 2 * np.linalg.slogdet(covariance_prior)[1]
        - nu_n / 2 * np.linalg.slogdet(posterior)[1]
        + d / 2 * (np.log(kappa) - np.log(kappa_n))
    )


def partition_evidence(Z, labels, mixture):
    """Closed-form log marginal likelihood of the partition ``labels`` under ``mixture``'s priors.

    The Dirichlet process's partition prior (Chinese restaurant process with the
    mixture's weight concentration) times each cluster's Normal-Wishart marginal
    likelihood; a diagonal covariance prior is taken as independent dimensions.
    """
    alpha = mixture.weight_concentration_prior_
    _, counts = np.unique(labels, return_counts=True)
    log_prior = (
        len(counts) * np.log(alpha)
        + gammaln(counts).sum()
        + gammaln(alpha)
        - gammaln(alpha + len(Z))
    )
    prior = np.asarray(mixture.covariance_prior_)
    dof = float(mixture.degrees_of_freedom_prior_)
    kappa = float(mixture.mean_precision_prior_)
    mean = np.asarray(mixture.mean_prior_)
    total = log_prior
    for k in np.unique(labels):
        Zk = Z[labels == k]
        if prior.ndim == 2:
            total += log_marginal_likelihood(Zk, prior, dof, mean, kappa)
        else:
            total += sum(
                log_marginal_likelihood(Zk[:, [j]], prior[[j]][:, None], dof, mean[[j]], kappa)
                for j in range(Z.shape[1])
            )
    return total


def held_out_score(estimator, Z, scale, seed):
    """Mean log-likelihood of held-out codes under the mixtures of the other folds."""
    folds = KFold(3, shuffle=True, random_state=seed).split(Z)
    return float(
        np.mean([first_e_step(estimator, Z[a], scale, seed).score(Z[b]) for a, b in folds])
    )


def split_half_stability(estimator, Z, scale, seed, n_splits=2):
    """Adjusted Rand index between the labellings of mixtures fitted on two random halves."""
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(n_splits):
        order = rng.permutation(len(Z))
        halves = order[: len(Z) // 2], order[len(Z) // 2 :]
        a, b = (first_e_step(estimator, Z[half], scale, seed).predict(Z) for half in halves)
        scores.append(adjusted_rand_score(a, b))
    return float(np.mean(scores))


def study_dataset(dataset, seed, tiny):
    """One row per scale of :data:`SCALES`, plus the scale of the ``auto`` rule."""
    estimator, Z, y = pretrained_codes(dataset, seed, tiny)
    auto = round(auto_cluster_scale(len(Z)), 2)
    rows = []
    for scale in sorted({*SCALES, auto}):
        mixture = first_e_step(estimator, Z, scale, seed)
        labels = mixture.predict(Z)
        rows.append(
            {
                "dataset": dataset.name,
                "n_samples": len(Z),
                "n_classes": len(np.unique(y)),
                "scale": scale,
                "auto": scale == auto,
                "n_clusters": len(np.unique(labels)),
                "acc": clustering_accuracy(y, labels),
                "held_out": held_out_score(estimator, Z, scale, seed),
                "evidence": partition_evidence(Z, labels, mixture),
                "stability": split_half_stability(estimator, Z, scale, seed),
            }
        )
    return rows


def picks(rows):
    """The row each rule of :data:`RULES` picks among one data set's ``rows``."""
    grid = [row for row in rows if row["scale"] in SCALES]
    several = [row for row in grid if row["n_clusters"] >= 2] or grid
    return {
        "auto": next(row for row in rows if row["auto"]),
        "held-out": max(grid, key=lambda row: row["held_out"]),
        "evidence": max(grid, key=lambda row: row["evidence"]),
        "stability": max(several, key=lambda row: row["stability"]),
    }


def markdown(rows_by_dataset, command):
    """Counts per scale, and each rule's pick with its count and accuracy."""
    header = "| Data set | n | K true | " + " | ".join(f"s={s:g}" for s in SCALES)
    lines = [
        "# Dirichlet-process cluster count against the prior scale",
        "",
        f"`{command}`: the first E-step's number of clusters on DeepDPGMMClusterer's pretrained "
        "codes (defaults) at each `cluster_scale`, and the scale four rules pick "
        "(see `benchmarks/dp_scale.py`). A count is within tolerance when "
        "|K found - K true| <= max(1, 0.2 K true).",
        "",
        header + " | " + " | ".join(RULES) + " |",
        "|---|---|---|" + "---|" * (len(SCALES) + len(RULES)),
    ]
    within = dict.fromkeys(RULES, 0)
    for name, rows in rows_by_dataset.items():
        first = rows[0]
        counts = {row["scale"]: row["n_clusters"] for row in rows}
        cells = []
        for rule, row in picks(rows).items():
            ok = abs(row["n_clusters"] - first["n_classes"]) <= k_tolerance(first["n_classes"])
            within[rule] += ok
            mark = "" if ok else " ✗"
            cells.append(f"s={row['scale']:g}: K {row['n_clusters']}{mark}, ACC {row['acc']:.2f}")
        lines.append(
            f"| {name} | {first['n_samples']:,} | {first['n_classes']} | "
            + " | ".join(str(counts[s]) for s in SCALES)
            + " | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        "Data sets within tolerance, by rule: "
        + ", ".join(f"{rule} {count} of {len(rows_by_dataset)}" for rule, count in within.items())
        + ".",
    ]
    return "\n".join(lines) + "\n"


def figure(rows_by_dataset, path):
    """Heat map of log2(K found / K true) by data set and scale, counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows_by_dataset)
    counts = np.array(
        [
            [next(r["n_clusters"] for r in rows if r["scale"] == s) for s in SCALES]
            for rows in rows_by_dataset.values()
        ]
    )
    truth = np.array([rows[0]["n_classes"] for rows in rows_by_dataset.values()])
    ratio = np.log2(counts / truth[:, None])
    fig, ax = plt.subplots(figsize=(1.0 * len(SCALES) + 3, 0.38 * len(names) + 1.5))
    image = ax.imshow(ratio, cmap="RdBu_r", vmin=-3, vmax=3, aspect="auto")
    for i, j in np.ndindex(counts.shape):
        ok = abs(counts[i, j] - truth[i]) <= k_tolerance(truth[i])
        ax.text(
            j,
            i,
            str(counts[i, j]),
            ha="center",
            va="center",
            fontsize=8,
            fontweight="bold" if ok else None,
        )
    ax.set_xticks(range(len(SCALES)), [f"{s:g}" for s in SCALES])
    ax.set_yticks(range(len(names)), [f"{n} (K={k})" for n, k in zip(names, truth, strict=True)])
    ax.set_xlabel("cluster_scale")
    ax.set_title("Clusters at the first E-step (bold: within tolerance of the true K)")
    fig.colorbar(image, ax=ax, label="log2(K found / K true)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_rows(rows, path):
    """The study's rows as a CSV."""
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


_INT_COLUMNS = ("n_samples", "n_classes", "n_clusters")
_FLOAT_COLUMNS = ("scale", "acc", "held_out", "evidence", "stability")


def read_rows(paths):
    """The rows of the study's CSVs at ``paths``, typed, grouped by data set in the suite's order.

    A data set found in more than one CSV is an error: the runs to merge must
    have covered disjoint data sets.
    """
    rows_by_dataset = {}
    for path in paths:
        found = {}
        typed = read_csv_rows(
            path,
            integers=_INT_COLUMNS,
            floats=_FLOAT_COLUMNS,
            booleans=("auto",),
            required=("dataset", *_INT_COLUMNS, *_FLOAT_COLUMNS, "auto"),
        )
        for row in typed:
            found.setdefault(row["dataset"], []).append(row)
        repeated = sorted(set(found) & set(rows_by_dataset))
        if repeated:
            raise ValueError(f"{path} repeats data sets of an earlier CSV: {', '.join(repeated)}.")
        rows_by_dataset.update(found)
    order = [name for name in SUITE_DATASETS if name in rows_by_dataset]
    order += sorted(set(rows_by_dataset) - set(order))
    return {name: rows_by_dataset[name] for name in order}


def write_report(rows_by_dataset, out, command):
    """``dp-scale.{csv,md,png}`` of ``rows_by_dataset`` in ``out``."""
    write_rows([r for rows in rows_by_dataset.values() for r in rows], out / "dp-scale.csv")
    (out / "dp-scale.md").write_text(markdown(rows_by_dataset, command))
    figure(rows_by_dataset, out / "dp-scale.png")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dp_scale", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--datasets", nargs="+", choices=list(SUITE_DATASETS), metavar="NAME")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, help="torch and BLAS threads (default: the libraries')"
    )
    parser.add_argument("--tiny", action="store_true", help="200 rows per data set, tiny networks")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--report",
        nargs="+",
        type=Path,
        metavar="CSV",
        help="run nothing: merge these results CSVs (of runs on disjoint --datasets) into "
        "one report in --out",
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report:
        command = "python -m benchmarks.dp_scale --report " + " ".join(map(str, args.report))
        write_report(read_rows(args.report), args.out, command)
        print((args.out / "dp-scale.md").read_text())
        return
    names = args.datasets or list(SUITE_DATASETS)
    command = "python -m benchmarks.dp_scale" + (
        f" --threads {args.threads}" if args.threads else ""
    )
    if args.datasets:
        command += " --datasets " + " ".join(names)
    rows_by_dataset = {}
    with limit_threads(args.threads):
        for name in names:
            start = time.perf_counter()
            rows_by_dataset[name] = study_dataset(SUITE_DATASETS[name], args.seed, args.tiny)
            counts = " ".join(f"{r['scale']:g}:{r['n_clusters']}" for r in rows_by_dataset[name])
            print(f"{name}: {counts} ({time.perf_counter() - start:.0f} s)", flush=True)
            write_report(rows_by_dataset, args.out, command)
    print((args.out / "dp-scale.md").read_text())


if __name__ == "__main__":
    main()
