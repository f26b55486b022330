"""A data-parallel fit on 2 gloo processes against a one-process fit, on digits.

For each estimator and seed, the same fit runs twice, one after the other:

- one process, ``batch_size=128``, one torch thread;
- ``--world-size`` processes started by ``torchrun`` (gloo, one thread
  each), ``batch_size=128 / world_size`` per rank, so that every optimizer
  step averages the gradients of 128 rows, with the same epochs.

It records the accuracy, the number of clusters, the wall time of ``fit`` and
the bytes rank 0 sent per epoch (``count_communication``: the gradient
all-reduce, the batch statistics and the E-step's collectives), and writes
``benchmarks/results/distributed-fit.{csv,md}``.

Usage::

    python -m benchmarks.distributed_fit                       # both estimators, seeds 0 1 2
    python -m benchmarks.distributed_fit --methods DeepDPGMM --seeds 0
    python -m benchmarks.distributed_fit --methods DeepDPGMM --seeds 3 4 5 --append
    python -m benchmarks.distributed_fit --quick               # a smoke test, a minute
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .distributed_gather import free_port

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("ClusterDDPM", "DeepDPGMM")
GLOBAL_BATCH_SIZE = 128


def _estimator(method, seed, batch_size, quick):
    from skdiffclust import ClusterDDPM, DeepDPGMMClusterer

    params = {"random_state": seed, "batch_size": batch_size}
    if quick:
        params.update(pretrain_epochs=2, n_iter=2)
    if method == "ClusterDDPM":
        return ClusterDDPM(n_clusters=10, **params)
    return DeepDPGMMClusterer(**params)


def _worker(args):
    """One rank of the fit (or the whole of it, outside torchrun)."""
    import torch
    import torch.distributed as dist
    from sklearn.datasets import load_digits

    from skdiffclust.distributed import count_communication
    from skdiffclust.metrics import clustering_accuracy

    torch.set_num_threads(1)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        dist.init_process_group("gloo")
    X, y = load_digits(return_X_y=True)
    model = _estimator(args.method, args.seed, GLOBAL_BATCH_SIZE // world_size, args.quick)
    start = time.perf_counter()
    with count_communication() as log:
        model.fit(X)
    seconds = time.perf_counter() - start
    if world_size == 1 or dist.get_rank() == 0:
        epochs = model.pretrain_epochs_ + model.n_iter
        result = {
            "method": args.method,
            "seed": args.seed,
            "processes": world_size,
            "batch_per_rank": GLOBAL_BATCH_SIZE // world_size,
            "acc": clustering_accuracy(y, model.labels_),
            "n_clusters": int(model.n_clusters_),
            "seconds": seconds,
            "mb_sent_per_epoch": log.bytes_sent / epochs / 1e6,
            "mb_by_operation": {op: b / epochs / 1e6 for op, b in log.sent.items()},
        }
        Path(args.output).write_text(json.dumps(result))
    if world_size > 1:
        dist.destroy_process_group()


def _run(method, seed, world_size, quick):
    with tempfile.TemporaryDirectory() as tmp:
        output = str(Path(tmp) / "result.json")
        worker = ["-m", "benchmarks.distributed_fit", "--worker", "--method", method]
        worker += ["--seed", str(seed), "--output", output] + (["--quick"] if quick else [])
        if world_size == 1:
            command = [sys.executable, *worker]
        else:
            command = [sys.executable, "-m", "torch.distributed.run"]
            command += [f"--nproc-per-node={world_size}", f"--master-port={free_port()}"]
            command += worker
        env = dict(os.environ, OMP_NUM_THREADS="1")
        subprocess.run(command, check=True, env=env, cwd=Path(__file__).resolve().parents[1])
        return json.loads(Path(output).read_text())


def _write(rows, stem):
    import pandas as pd

    rows = sorted(rows, key=lambda r: (r["method"], r["seed"], r["processes"]))
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "mb_by_operation"} for r in rows])
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / f"{stem}.csv", index=False)
    lines = [
        "| estimator | seed | processes | batch per rank | ACC | clusters | fit (s) "
        "| MB sent per epoch by rank 0 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['seed']} | {r['processes']} | {r['batch_per_rank']} "
            f"| {r['acc']:.3f} | {r['n_clusters']} | {r['seconds']:.0f} "
            f"| {r['mb_sent_per_epoch']:.1f} |"
        )
    lines += [
        "",
        "| estimator | seeds | mean ACC, 1 process | mean ACC, p processes | difference "
        "| mean fit, 1 process (s) | mean fit, p processes (s) | time ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    means = frame.groupby(["method", "processes"])[["acc", "seconds"]].mean().unstack()
    seeds = frame.groupby("method")["seed"].nunique()
    for method, row in means.iterrows():
        acc, seconds = row["acc"], row["seconds"]
        one, many = acc.iloc[0], acc.iloc[-1]
        lines.append(
            f"| {method} | {seeds[method]} | {one:.3f} | {many:.3f} | {many - one:+.3f} "
            f"| {seconds.iloc[0]:.0f} | {seconds.iloc[-1]:.0f} "
            f"| {seconds.iloc[-1] / seconds.iloc[0]:.2f} |"
        )
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a few epochs: a smoke test")
    parser.add_argument(
        "--append", action="store_true", help="keep the rows of the last run's CSV (other fits)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return
    stem = "distributed-fit-quick" if args.quick else "distributed-fit"
    rows = []
    if args.append and (RESULTS / f"{stem}.csv").exists():
        import pandas as pd

        rows = pd.read_csv(RESULTS / f"{stem}.csv").to_dict("records")
    for method in args.methods:
        for seed in args.seeds:
            for world_size in (1, args.world_size):
                rows = [
                    r
                    for r in rows
                    if (r["method"], r["seed"], r["processes"]) != (method, seed, world_size)
                ]
                rows.append(_run(method, seed, world_size, args.quick))
                r = rows[-1]
                print(
                    f"{method} seed {seed}, {world_size} process(es): ACC {r['acc']:.3f}, "
                    f"{r['n_clusters']} clusters, {r['seconds']:.0f} s, "
                    f"{r['mb_sent_per_epoch']:.1f} MB/epoch",
                    flush=True,
                )
                # Written after every fit, so that an interrupted run keeps its rows.
                table = _write(rows, stem)
    print(table)


if __name__ == "__main__":
    main()
