"""Benchmark skdiffclust's estimators against classical clusterings.

Run from the repository root::

    python -m benchmarks.run --quick   # digits, one seed, every method: a few minutes
    python -m benchmarks.run           # every data set, seeds 0 1 2

Each method x data set x seed is fitted in its own worker process (for an
honest peak-memory reading) and scored with ACC, NMI and ARI. The run writes
``<timestamp>-<mode>.csv`` (one row per fit), ``.md`` (mean ± std tables) and
``.png`` (the figure) to ``benchmarks/results/`` and copies them to
``latest-<mode>.*``. See ``python -m benchmarks.run --help``.
"""

import argparse
import os
import platform
import sys
import time
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .measure import run_isolated
from .registry import DATASETS, METHODS, unavailable_reason
from .report import markdown_code_versions, markdown_tables, summarize, write_outputs

RESULTS_DIRECTORY = Path(__file__).resolve().parent / "results"
FULL_SEEDS = (0, 1, 2)
QUICK_DATASETS = ("digits",)


def _choice(registry):
    """Case-insensitive argparse type that maps a name to its registry key."""
    keys = {key.lower(): key for key in registry}

    def parse(name):
        try:
            return keys[name.lower()]
        except KeyError:
            raise argparse.ArgumentTypeError(
                f"unknown name {name!r}; choose from {', '.join(registry)}"
            ) from None

    return parse


def add_run_arguments(
    parser,
    *,
    datasets,
    methods,
    quick_datasets,
    datasets_default,
    methods_default,
    timeout_default,
    timeout_help,
    tiny_help,
):
    """The options every benchmark runner shares, added to ``parser``."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{', '.join(quick_datasets)} only, seed 0, every method",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        type=_choice(datasets),
        metavar="NAME",
        help=f"data sets among {', '.join(datasets)} (default: {datasets_default})",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        type=_choice(methods),
        metavar="NAME",
        help=f"methods among {', '.join(methods)} (default: {methods_default})",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        metavar="SEED",
        help=f"random seeds (default: {' '.join(map(str, FULL_SEEDS))}, or 0 with --quick)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIRECTORY,
        metavar="DIR",
        help="directory of the result files (default: benchmarks/results)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=timeout_default,
        metavar="SECONDS",
        help=f"stop a fit after this long and record it as failed (default: {timeout_help})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="threads of torch and of the OpenMP/BLAS pools per fit (default: the libraries' "
        "defaults, one per core); 1 is faster when other jobs share the cores",
    )
    parser.add_argument("--tiny", action="store_true", help=tiny_help)
    return parser


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__.split("\n\n")[0],
    )
    return add_run_arguments(
        parser,
        datasets=DATASETS,
        methods=METHODS,
        quick_datasets=QUICK_DATASETS,
        datasets_default="all, or digits with --quick",
        methods_default="all",
        timeout_default=None,
        timeout_help="no limit",
        tiny_help="smoke test of the harness: 200 samples per data set, tiny deep models",
    )


#: Packages whose versions the reports state.
PACKAGES = ("skdiffclust", "torch", "scikit-learn", "numpy", "umap-learn")


def _package_versions(names=PACKAGES):
    versions = []
    for name in names:
        try:
            versions.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return ", ".join(versions)


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _format_elapsed(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}:{seconds:02d}"


def _progress_result(record):
    if record["status"] != "ok":
        return record["status"]
    return (
        f"ACC {record['acc']:.3f}  NMI {record['nmi']:.3f}  ARI {record['ari']:.3f}  "
        f"{record['n_clusters_found']} clusters  fit {record['fit_seconds']:.1f} s"
    )


def describe_run(now, seeds, n_threads, wall_seconds, command, packages=PACKAGES):
    """The sentence of a report that says where, when and how the run was made."""
    return (
        f"Run on {now:%Y-%m-%d %H:%M}, {_cpu_model()} ({os.cpu_count()} cores), "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
        f"{_package_versions(packages)}. Seeds: {' '.join(map(str, seeds))}. "
        f"Threads per fit: {n_threads or 'library defaults'}. "
        f"Wall time {_format_elapsed(wall_seconds)} (`{command}`)."
    )


def _available(names, registry, kind):
    kept = []
    for name in names:
        reason = unavailable_reason(registry[name])
        if reason is None:
            kept.append(name)
        else:
            print(f"note: skipping {kind} {name}: {reason}")
    return kept


def main(argv=None):
    """Run the benchmark; return the paths of the written files by suffix."""
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    mode = ("quick" if args.quick else "full") + ("-tiny" if args.tiny else "")
    dataset_names = args.datasets or list(QUICK_DATASETS if args.quick else DATASETS)
    method_names = args.methods or list(METHODS)
    seeds = args.seeds or ([0] if args.quick else list(FULL_SEEDS))
    dataset_names = _available(dict.fromkeys(dataset_names), DATASETS, "data set")
    method_names = _available(dict.fromkeys(method_names), METHODS, "method")
    if not dataset_names or not method_names:
        sys.exit("error: nothing to run")

    plan = [
        (dataset, method, seed)
        for dataset in dataset_names
        for method in method_names
        for seed in seeds
    ]
    print(
        f"skdiffclust benchmark, {mode} mode: {len(method_names)} methods x "
        f"{len(dataset_names)} data sets x {len(seeds)} seeds = {len(plan)} fits",
        flush=True,
    )
    records = []
    width = len(str(len(plan)))
    for step, (dataset, method, seed) in enumerate(plan, start=1):
        print(
            f"[{step:>{width}}/{len(plan)}] {dataset} | {method} | seed {seed} ...",
            end=" ",
            flush=True,
        )
        record = run_isolated(
            method, dataset, seed, tiny=args.tiny, timeout=args.timeout, n_threads=args.threads
        )
        records.append(record)
        elapsed = _format_elapsed(time.perf_counter() - started)
        print(f"{_progress_result(record)}  [elapsed {elapsed}]", flush=True)

    wall_seconds = time.perf_counter() - started
    now = datetime.now()
    command = f"python -m benchmarks.run {' '.join(argv if argv is not None else sys.argv[1:])}"
    header = [
        f"# skdiffclust benchmark: {mode} mode",
        "",
        describe_run(now, seeds, args.threads, wall_seconds, command),
        *markdown_code_versions(records),
    ]
    summary = summarize(records)
    markdown = markdown_tables(summary, DATASETS, METHODS, header)
    seeds_text = (
        f"seed {seeds[0]}"
        if len(seeds) == 1
        else f"mean ± std over seeds {', '.join(map(str, seeds))}"
    )
    title = (
        f"skdiffclust benchmark, {mode} mode, {seeds_text} "
        f"({now:%Y-%m-%d}, {os.cpu_count()} CPU cores)"
    )
    paths = write_outputs(
        records, summary, args.out, f"{now:%Y%m%d-%H%M%S}-{mode}", f"latest-{mode}", markdown, title
    )
    print("\n" + markdown)
    print(f"Wrote {', '.join(str(path) for path in paths.values())} (and latest-{mode}.*)")
    print(f"Total wall time: {_format_elapsed(wall_seconds)}")
    return paths


if __name__ == "__main__":
    # Import under the package name so that the worker processes, which
    # unpickle functions by module name, find the same functions.
    from benchmarks.run import main as package_main

    package_main()
