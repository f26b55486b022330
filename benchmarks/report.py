"""Results of a benchmark run: the CSV of every measurement, a Markdown table, a figure."""

import csv
import math
import shutil
import subprocess
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np

from .csv_rows import read_rows

#: Columns of the results CSV, one row per method x data set x seed.
RESULT_COLUMNS = [
    "dataset",
    "method",
    "seed",
    "n_samples",
    "n_features",
    "n_classes",
    "acc",
    "nmi",
    "ari",
    "n_clusters_found",
    "fit_seconds",
    "predict_samples_per_second",
    "peak_rss_mb",
    "fit_memory_mb",
    "status",
    "warnings",
    "code",
]
SCORES = ["acc", "nmi", "ari"]
NUMERIC_COLUMNS = SCORES + [
    "n_clusters_found",
    "fit_seconds",
    "predict_samples_per_second",
    "peak_rss_mb",
    "fit_memory_mb",
]
#: Columns of the results CSV that hold whole numbers.
INTEGER_COLUMNS = ("seed", "n_samples", "n_features", "n_classes", "n_clusters_found")


#: Where the benchmark scripts write their reports.
RESULTS_DIR = Path(__file__).parent / "results"

#: The files whose changes a fit's ``code`` records: the package and the scripts.
MEASURED_CODE = ("skdiffclust", ":(glob)benchmarks/*.py")
#: Marks the code version of a working tree whose measured code differs from its commit.
CHANGED = "+changes"


def code_version():
    """The commit the measured code comes from, with :data:`CHANGED` when it was edited.

    The package's version when the code is not in a git checkout.
    """
    from skdiffclust import __version__

    root = Path(__file__).resolve().parent.parent

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        changed = git("status", "--porcelain", "--", *MEASURED_CODE)
    except (OSError, subprocess.SubprocessError):
        return f"skdiffclust {__version__}"
    return commit + (CHANGED if changed else "")


def _fits(n):
    return f"{n} fit" if n == 1 else f"{n} fits"


def markdown_code_versions(records):
    """Lines naming the code the fits of ``records`` ran (their ``code`` column)."""
    counts = Counter(record.get("code") or "" for record in records)
    unknown = counts.pop("", 0)
    if not counts:
        return []
    if len(counts) == 1 and not unknown:
        line = f"Code: `{next(iter(counts))}` for every fit."
    else:
        line = "Code: " + ", ".join(f"`{code}` ({_fits(n)})" for code, n in counts.items()) + "."
    if unknown:
        line += f" No code is recorded for {_fits(unknown)} (an older CSV)."
    if any(code.endswith(CHANGED) for code in counts):
        line += (
            f" Fits marked {CHANGED} ran with uncommitted changes to skdiffclust/ or the "
            "benchmark scripts, so their commit alone does not reproduce them."
        )
    return ["", line]


def write_csv(records, path, append=False):
    """Write ``records`` to the CSV at ``path``, or append them (a header only if it is new)."""
    header = not (append and Path(path).exists())
    with open(path, "a" if append else "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        if header:
            writer.writeheader()
        for record in records:
            writer.writerow({column: record.get(column, "") for column in RESULT_COLUMNS})


def read_csv(path):
    """The records of a results CSV, with numbers as numbers (empty cells as NaN)."""
    floats = [column for column in NUMERIC_COLUMNS if column not in INTEGER_COLUMNS]
    return read_rows(path, integers=INTEGER_COLUMNS, floats=floats, empty_as_nan=True)


def summarize(records):
    """Mean and sample std over seeds of each column, per (data set, method), in run order."""
    groups = {}
    for record in records:
        groups.setdefault((record["dataset"], record["method"]), []).append(record)
    summary = []
    for (dataset, method), runs in groups.items():
        ok = [run for run in runs if run.get("status") == "ok"]
        row = {
            "dataset": dataset,
            "method": method,
            "n_runs": len(runs),
            "n_ok": len(ok),
            "errors": sorted({run["status"] for run in runs if run.get("status") != "ok"}),
            "n_classes": next((int(run["n_classes"]) for run in ok), None),
        }
        for column in NUMERIC_COLUMNS:
            values = np.array([run[column] for run in ok], dtype=float)
            values = values[np.isfinite(values)]
            row[column] = values.mean() if len(values) else math.nan
            row[column + "_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        summary.append(row)
    return summary


def _mean_std(row, column, digits):
    mean, std = row[column], row[column + "_std"]
    if not math.isfinite(mean):
        return "n/a"
    if math.isfinite(std):
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


def _clusters(row):
    if not math.isfinite(row["n_clusters_found"]):
        return "n/a"
    if math.isfinite(row["n_clusters_found_std"]) and row["n_clusters_found_std"] > 0:
        return _mean_std(row, "n_clusters_found", 1)
    return f"{row['n_clusters_found']:.0f}"


def _thousands(value):
    return f"{value:,.0f}" if math.isfinite(value) else "n/a"


def markdown_tables(summary, datasets, methods, header_lines=()):
    """One Markdown table per data set, then a legend of the methods and columns."""
    lines = list(header_lines)
    for name in dict.fromkeys(row["dataset"] for row in summary):
        rows = [row for row in summary if row["dataset"] == name]
        lines += [
            "",
            f"**{name}**: {datasets[name].description}",
            "",
            "| Method | ACC | NMI | ARI | Clusters | Fit (s) | Predict (samples/s) | Memory (MB) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            if row["n_ok"] == 0:
                lines.append(f"| {row['method']} | {'; '.join(row['errors'])} |||||||")
                continue
            failed = row["n_runs"] - row["n_ok"]
            method = row["method"] + (f" ({failed} of {row['n_runs']} failed)" if failed else "")
            cells = [
                method,
                *(_mean_std(row, score, 3) for score in SCORES),
                _clusters(row),
                _mean_std(row, "fit_seconds", 1),
                _thousands(row["predict_samples_per_second"]),
                _thousands(row["fit_memory_mb"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Methods:", ""]
    used = dict.fromkeys(row["method"] for row in summary)
    lines += [f"- {name}: {methods[name].description}" for name in used]
    lines += [
        "",
        "ACC: accuracy under the best one-to-one matching of clusters to classes "
        "(`skdiffclust.metrics.clustering_accuracy`); NMI, ARI: scikit-learn; all scored on the "
        "labels of the training data. Values are mean ± sample std over seeds. Clusters: number "
        "of distinct labels found. Fit: wall time of `fit_predict`. Predict: `predict` on the "
        "whole data set in shuffled order, repeated for at least 0.2 s. Memory: peak resident "
        "memory added by `fit_predict` and `predict`, measured by the kernel (Linux `VmHWM`, "
        "reset before the fit) in a worker process that holds the data and the preloaded "
        "libraries; that baseline is not counted.",
    ]
    return "\n".join(lines) + "\n"


def plot(summary, path, title):
    """Grouped bars of ACC / NMI / ARI (std error bars) and fit time (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    datasets = list(dict.fromkeys(row["dataset"] for row in summary))
    n_methods = max(sum(row["dataset"] == name for row in summary) for name in datasets)
    colors = {"acc": "#0072B2", "nmi": "#E69F00", "ari": "#009E73"}  # Okabe-Ito
    height = 0.26
    figure, axes = plt.subplots(
        len(datasets),
        2,
        figsize=(11, 0.5 + (0.62 * n_methods + 1.1) * len(datasets)),
        gridspec_kw={"width_ratios": [3, 1.3]},
        squeeze=False,
        constrained_layout=True,
    )
    for (score_axis, time_axis), name in zip(axes, datasets, strict=True):
        rows = [row for row in summary if row["dataset"] == name][::-1]  # first on top
        positions = np.arange(len(rows))
        for offset, score in zip((height, 0, -height), SCORES, strict=True):
            raw_means = np.array([row[score] for row in rows])
            means = np.nan_to_num(raw_means)
            errors = np.nan_to_num([row[score + "_std"] for row in rows])
            score_axis.barh(
                positions + offset,
                means,
                height,
                xerr=errors if errors.any() else None,
                color=colors[score],
                label=score.upper(),
                error_kw={"elinewidth": 1, "capsize": 2},
            )
            for y, mean, error in zip(positions + offset, raw_means, errors, strict=True):
                if math.isfinite(mean):  # a failed method's row label says so instead
                    score_axis.text(
                        mean + error + 0.01, y, f"{mean:.2f}", va="center", fontsize=7, color="0.25"
                    )
        labels = [
            f"{row['method']}\n{_clusters(row)} cluster{'' if _clusters(row) == '1' else 's'}"
            if math.isfinite(row["n_clusters_found"])
            else f"{row['method']}\nfailed"
            for row in rows
        ]
        score_axis.set_yticks(positions, labels, fontsize=9)
        score_axis.set_xlim(0, 1.1)
        score_axis.set_xticks(np.linspace(0, 1, 6))
        score_axis.grid(axis="x", color="0.9")
        score_axis.set_axisbelow(True)
        n_classes = next((row["n_classes"] for row in rows if row["n_classes"]), None)
        classes = f" ({n_classes} classes)" if n_classes else ""
        score_axis.set_title(name + classes, loc="left", fontweight="bold")
        score_axis.set_xlabel("score (higher is better)")

        seconds = np.array([row["fit_seconds"] for row in rows])
        errors = np.nan_to_num([row["fit_seconds_std"] for row in rows])
        time_axis.barh(
            positions,
            np.nan_to_num(seconds),
            0.6,
            xerr=errors if errors.any() else None,
            color="0.55",
            error_kw={"elinewidth": 1, "capsize": 2},
        )
        for y, value, error in zip(positions, seconds, errors, strict=True):
            if math.isfinite(value):
                x = (value + error) * 1.2
                label = f"{value:.2g} s" if value < 100 else f"{value:.0f} s"
                time_axis.text(x, y, label, va="center", fontsize=7, color="0.25")
        time_axis.set_xscale("log")
        finite = seconds[np.isfinite(seconds) & (seconds > 0)]
        if len(finite):
            # Whole decades, so that at least one labelled major tick shows.
            low = 10 ** np.floor(np.log10(finite.min() / 2))
            high = 10 ** np.ceil(np.log10(finite.max() * 8))
            time_axis.set_xlim(low, high)
        time_axis.xaxis.set_minor_formatter(NullFormatter())
        time_axis.set_yticks(positions, [])
        time_axis.set_ylim(score_axis.get_ylim())
        time_axis.grid(axis="x", color="0.9", which="major")
        time_axis.set_axisbelow(True)
        time_axis.set_title("fit time", loc="left")
        time_axis.set_xlabel("seconds (log scale)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_outputs(records, summary, directory, stem, latest_stem, markdown, title, figure=None):
    """Write ``stem``.csv/.md/.png in ``directory`` and copy them to ``latest_stem``.*.

    ``figure(summary, path, title)`` draws the PNG; the default is :func:`plot`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = {suffix: directory / f"{stem}.{suffix}" for suffix in ("csv", "md", "png")}
    write_csv(records, paths["csv"])
    paths["md"].write_text(markdown)
    (figure or plot)(summary, paths["png"], title)
    for suffix, path in paths.items():
        shutil.copyfile(path, directory / f"{latest_stem}.{suffix}")
    return paths


def save_markdown(markdown, kind, quick=False, out=None):
    """Write a stand-alone Markdown report under ``benchmarks/results/``, named
    by time and ``kind`` (or at ``out``), and say where."""
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = RESULTS_DIR / f"{stamp}-{kind}{'-quick' if quick else ''}.md"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    print(f"saved {out}")
    return out


# ------------------------------------------------- comparisons across data sets
#: Two mean scores closer than this are a tie when methods are compared.
TIE_MARGIN = 0.01


def _means(summary, column):
    """``{(dataset, method): mean of column}`` over the rows with a finite mean."""
    return {
        (row["dataset"], row["method"]): row[column]
        for row in summary
        if math.isfinite(row[column])
    }


def wins_ties_losses(summary, estimators, baselines, scores=("acc", "ari"), margin=TIE_MARGIN):
    """Count the data sets on which each estimator beats, ties or loses to each baseline.

    Means over seeds are compared: the estimator wins when its mean is more than
    ``margin`` above the baseline's, loses when it is more than ``margin``
    below, and ties otherwise. Data sets on which either method has no
    successful run do not count.

    Parameters
    ----------
    summary : list of dict
        Rows of :func:`summarize`.
    estimators, baselines : sequence of str
        Method names; pairs of a method with itself are left out.
    scores : sequence of str, default=("acc", "ari")
        Columns compared.
    margin : float, default=TIE_MARGIN
        Largest difference of means that is a tie.

    Returns
    -------
    rows : list of dict
        One row per pair present in ``summary``, with keys ``"estimator"``,
        ``"baseline"``, ``"n_datasets"`` and, for each score, a tuple
        ``(wins, ties, losses)``.
    """
    present = {row["method"] for row in summary}
    rows = []
    for estimator in estimators:
        for baseline in baselines:
            if estimator == baseline or not {estimator, baseline} <= present:
                continue
            row = {"estimator": estimator, "baseline": baseline}
            for score in scores:
                means = _means(summary, score)
                differences = [
                    means[dataset, estimator] - means[dataset, baseline]
                    for dataset in dict.fromkeys(key[0] for key in means)
                    if (dataset, estimator) in means and (dataset, baseline) in means
                ]
                wins = sum(difference > margin for difference in differences)
                losses = sum(difference < -margin for difference in differences)
                row[score] = (wins, len(differences) - wins - losses, losses)
                row["n_datasets"] = len(differences)
            rows.append(row)
    return rows


def k_tolerance(n_classes):
    """Largest acceptable error of a number of clusters found: ``max(1, 0.2 n_classes)``."""
    return max(1.0, 0.2 * n_classes)


def cluster_counts(records, method):
    """The numbers of clusters ``method`` found against the numbers of classes, per data set.

    Parameters
    ----------
    records : list of dict
        Measurements, as returned by :func:`~benchmarks.measure.measure`.
    method : str
        Name of the method, one that finds the number of clusters itself.

    Returns
    -------
    rows : list of dict
        One row per data set in run order, with ``"dataset"``, ``"n_classes"``,
        ``"found"`` (the number found by each successful seed), ``"mean"``,
        ``"tolerance"`` (:func:`k_tolerance`), ``"within"`` (whether the mean
        is within the tolerance of the number of classes) and ``"seeds_within"``
        (how many seeds are).
    """
    groups = {}
    for record in records:
        if record["method"] == method and record.get("status") == "ok":
            groups.setdefault(record["dataset"], []).append(record)
    rows = []
    for dataset, runs in groups.items():
        n_classes = int(runs[0]["n_classes"])
        found = [int(run["n_clusters_found"]) for run in runs]
        tolerance = k_tolerance(n_classes)
        mean = float(np.mean(found))
        rows.append(
            {
                "dataset": dataset,
                "n_classes": n_classes,
                "found": found,
                "mean": mean,
                "tolerance": tolerance,
                "within": abs(mean - n_classes) <= tolerance,
                "seeds_within": sum(abs(k - n_classes) <= tolerance for k in found),
            }
        )
    return rows


def versus_best_reference(summary, estimators, references, score="acc"):
    """Each estimator's mean score against the best of ``references``, per data set.

    Returns
    -------
    rows : list of dict
        One row per data set on which a reference succeeded, with
        ``"dataset"``, ``"reference"`` (the best one's name), ``"best"`` (its
        mean) and, for each estimator with a successful run there, a dict
        ``{"score", "difference", "at_least"}``: ``difference`` is the
        estimator's mean minus the best reference's, ``at_least`` whether it
        is >= 0.
    """
    means = _means(summary, score)
    rows = []
    for dataset in dict.fromkeys(row["dataset"] for row in summary):
        candidates = [
            (means[dataset, name], name) for name in references if (dataset, name) in means
        ]
        if not candidates:
            continue
        best, reference = max(candidates)
        row = {"dataset": dataset, "reference": reference, "best": best}
        for estimator in estimators:
            if (dataset, estimator) in means:
                difference = means[dataset, estimator] - best
                row[estimator] = {
                    "score": means[dataset, estimator],
                    "difference": difference,
                    "at_least": difference >= 0,
                }
        rows.append(row)
    return rows


# ----------------------------------------------------- Markdown of comparisons
def markdown_datasets(datasets):
    """A Markdown table of :class:`~benchmarks.registry.Dataset` entries."""
    lines = [
        "| Data set | n | d | K | Kind | Source | Description |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        n, d, k = dataset.shape
        lines.append(
            f"| {dataset.name} | {n:,} | {d} | {k} | {dataset.kind} | {dataset.source} "
            f"| {dataset.description} |"
        )
    return lines


def markdown_matrix(summary, column, digits=3, with_std=True):
    """A Markdown table of ``column`` (mean ± std), data sets as rows and methods as columns."""
    datasets = list(dict.fromkeys(row["dataset"] for row in summary))
    methods = list(dict.fromkeys(row["method"] for row in summary))
    cells = {(row["dataset"], row["method"]): row for row in summary}
    lines = ["| Data set | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for dataset in datasets:
        values = []
        for method in methods:
            row = cells.get((dataset, method))
            if row is None:
                values.append("")
            elif row["n_ok"] == 0:
                values.append("failed")
            elif with_std:
                values.append(_mean_std(row, column, digits))
            else:
                values.append(f"{row[column]:.{digits}f}" if math.isfinite(row[column]) else "n/a")
        lines.append(f"| {dataset} | " + " | ".join(values) + " |")
    return lines


def markdown_wins_ties_losses(rows, margin=TIE_MARGIN):
    """Markdown of :func:`wins_ties_losses`: one row per estimator and baseline."""
    lines = [
        f"Wins / ties / losses over data sets (means of the seeds; a tie is within {margin:g}).",
        "",
        "| Estimator | Baseline | Data sets | ACC W/T/L | ARI W/T/L |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        acc, ari = ("/".join(map(str, row[score])) for score in ("acc", "ari"))
        lines.append(
            f"| {row['estimator']} | {row['baseline']} | {row['n_datasets']} | {acc} | {ari} |"
        )
    return lines


def markdown_cluster_counts(rows, method):
    """Markdown of :func:`cluster_counts`, with the totals."""
    lines = [
        f"Clusters found by {method} (number of clusters not given) against the true K; within "
        "tolerance means |K found - K true| <= max(1, 0.2 K true), on the mean over seeds.",
        "",
        "| Data set | K true | K found (per seed) | Mean | Tolerance | Within | Seeds within |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        found = ", ".join(map(str, row["found"]))
        lines.append(
            f"| {row['dataset']} | {row['n_classes']} | {found} | {row['mean']:.1f} | "
            f"{row['tolerance']:g} | {'yes' if row['within'] else 'no'} | "
            f"{row['seeds_within']} of {len(row['found'])} |"
        )
    within = sum(row["within"] for row in rows)
    lines += ["", f"{method} finds K within tolerance on {within} of {len(rows)} data sets."]
    return lines


def markdown_versus_best(rows, estimators, references):
    """Markdown of :func:`versus_best_reference`, with a count per estimator."""
    names = " / ".join(references)
    lines = [
        f"ACC of each estimator against the best of {names} on each data set (means of the "
        "seeds): the difference, and whether the estimator is at least as good.",
        "",
        "| Data set | Best of " + names + " | " + " | ".join(estimators) + " |",
        "|---" * (len(estimators) + 2) + "|",
    ]
    for row in rows:
        cells = []
        for estimator in estimators:
            if estimator not in row:
                cells.append("n/a")
                continue
            entry = row[estimator]
            verdict = ">= best" if entry["at_least"] else f"{-entry['difference']:.3f} below"
            cells.append(f"{entry['score']:.3f} ({verdict})")
        lines.append(
            f"| {row['dataset']} | {row['best']:.3f} ({row['reference']}) | "
            + " | ".join(cells)
            + " |"
        )
    lines.append("")
    for estimator in estimators:
        entries = [row[estimator] for row in rows if estimator in row]
        at_least = sum(entry["at_least"] for entry in entries)
        below = [-entry["difference"] for entry in entries if not entry["at_least"]]
        gap = f"; when below, by {np.median(below):.3f} (median)" if below else ""
        lines.append(
            f"- {estimator}: at least as good on {at_least} of {len(entries)} data sets{gap}."
        )
    return lines


# -------------------------------------------------------------------- heat map
def heatmap(summary, path, title, column="acc", annotate_clusters=None):
    """A heat map of ``column`` by data set (rows) and method (columns).

    The cells of the method ``annotate_clusters`` also show the number of
    clusters it found (mean over seeds) and the number of classes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(row["dataset"] for row in summary))
    methods = list(dict.fromkeys(row["method"] for row in summary))
    cells = {(row["dataset"], row["method"]): row for row in summary}
    values = np.full((len(datasets), len(methods)), np.nan)
    for (dataset, method), row in cells.items():
        values[datasets.index(dataset), methods.index(method)] = row[column]

    width = 2.0 + 1.05 * len(methods)
    figure, axis = plt.subplots(
        figsize=(width, 1.4 + 0.42 * len(datasets)), constrained_layout=True
    )
    colormap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    image = axis.imshow(np.ma.masked_invalid(values), cmap=colormap, vmin=0, vmax=1, aspect="auto")
    for i, dataset in enumerate(datasets):
        for j, method in enumerate(methods):
            row = cells.get((dataset, method))
            if row is None:
                continue
            value = values[i, j]
            text = f"{value:.2f}" if math.isfinite(value) else "failed"
            if method == annotate_clusters and math.isfinite(row["n_clusters_found"]):
                found = row["n_clusters_found"]
                found = f"{found:.0f}" if found == round(found) else f"{found:.1f}"
                text += f"\nK {found}/{row['n_classes']}"
            color = "black" if math.isfinite(value) and value > 0.6 else "white"
            if not math.isfinite(value):
                color = "0.2"
            axis.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    axis.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
    axis.set_yticks(range(len(datasets)), datasets, fontsize=8)
    axis.tick_params(length=0)
    figure.colorbar(image, ax=axis, shrink=0.6, label=column.upper())
    # About 12 characters of a 9-point title fit in an inch of a narrow figure.
    axis.set_title("\n".join(textwrap.wrap(title, width=int(12 * width))), fontsize=9)
    figure.savefig(path, dpi=120)
    plt.close(figure)
