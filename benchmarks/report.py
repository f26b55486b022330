"""Results of a benchmark run: the CSV of every measurement, a Markdown table, a figure."""

import csv
import math
import shutil
import time
from pathlib import Path

import numpy as np

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
]
SCORES = ["acc", "nmi", "ari"]
NUMERIC_COLUMNS = SCORES + [
    "n_clusters_found",
    "fit_seconds",
    "predict_samples_per_second",
    "peak_rss_mb",
    "fit_memory_mb",
]


#: Where the benchmark scripts write their reports.
RESULTS_DIR = Path(__file__).parent / "results"


def write_csv(records, path):
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({column: record.get(column, "") for column in RESULT_COLUMNS})


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


def write_outputs(records, summary, directory, stem, latest_stem, markdown, title):
    """Write ``stem``.csv/.md/.png in ``directory`` and copy them to ``latest_stem``.*."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {suffix: directory / f"{stem}.{suffix}" for suffix in ("csv", "md", "png")}
    write_csv(records, paths["csv"])
    paths["md"].write_text(markdown)
    plot(summary, paths["png"], title)
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
