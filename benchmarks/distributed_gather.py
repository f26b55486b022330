"""Time and rank-0 memory of bringing latent codes to the E-step across processes.

Two (``--world-size``) gloo processes on this machine each hold their shard of
``n`` rows of 16-d float64 codes (``shard_indices``, global row order) and
run, for each ``n``:

- ``gather_rows(..., dst=0)``: every row to rank 0, which fits the mixture;
- ``gather_rows(...)``: every row to every rank;
- ``gather_subsample(..., 10000, dst=0)``: the E-step's subsample when
  ``e_step_max_samples=10000``; only those rows travel.

Times are the best of ``--repeats`` runs, between barriers. The peak memory
is the largest growth of rank 0's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs`` before each call; Linux only) over its resident set
before the call, which already holds its own shard; the result alone takes
``n x 16 x 8`` bytes. Allocations of over 64 kB are mapped and unmapped one by
one (``MALLOC_MMAP_THRESHOLD_``), so that one call's peak does not hide in
memory that an earlier one freed. The kernel updates these counters lazily,
the page faults of each thread in batches: differences of a few MB are noise.

A second table times the gradient all-reduce of one DistributedDataParallel
step for the default MLP models of both estimators on digits (their
parameter counts are read from estimators built on digits), next to the
bytes of the ring all-reduce formula and the steps of one epoch.

Usage::

    python benchmarks/distributed_gather.py            # 10k, 100k and 1M rows
    python benchmarks/distributed_gather.py --quick    # 10k rows, a smoke test
"""

import argparse
import math
import os
import socket
import sys
import time

import numpy as np

N_FEATURES = 16
MAX_SAMPLES = 10_000


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (for a local process group)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status_bytes(field):
    """``VmRSS`` or ``VmHWM`` of this process in bytes, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _measure(call, repeats, barrier):
    """Best time of ``call`` and the largest peak RSS growth of its runs,
    after a warm-up run (gloo sets up its connections on first use)."""
    barrier()
    call()  # the result is dropped at once
    best, peak = float("inf"), None
    for _ in range(repeats):
        barrier()
        resettable = _reset_peak()
        before = _status_bytes("VmRSS")
        start = time.perf_counter()
        result = call()
        elapsed = time.perf_counter() - start
        if resettable and before is not None:
            peak = max(peak or 0, _status_bytes("VmHWM") - before)
        del result
        best = min(best, elapsed)
    return best, peak


def _rank_main(rank, world_size, port, sizes, models, repeats, results):
    import torch
    import torch.distributed as dist

    from skdiffclust.distributed import (
        count_communication,
        distributed_context,
        gather_rows,
        gather_subsample,
        shard_indices,
    )

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    ctx = distributed_context()
    for n_samples in sizes:
        rows = shard_indices(n_samples, rank, world_size)
        Z_local = np.random.default_rng(rank).standard_normal((len(rows), N_FEATURES))
        row = {"n_samples": n_samples}
        calls = {
            "to_rank0": lambda Z=Z_local: gather_rows(Z, ctx, dst=0),
            "to_all": lambda Z=Z_local: gather_rows(Z, ctx),
            "subsample": lambda Z=Z_local: gather_subsample(Z, MAX_SAMPLES, ctx, 0, dst=0),
        }
        for name, call in calls.items():
            with count_communication() as log:
                seconds, peak = _measure(call, repeats, dist.barrier)
            row[name] = (seconds, peak, log.bytes_received / (repeats + 1))  # + warm-up
        if ctx.is_main:
            results.put(row)
        del Z_local
    for name, n_parameters in models:
        gradients = torch.zeros(n_parameters, dtype=torch.float32)
        seconds, _ = _measure(lambda g=gradients: dist.all_reduce(g), repeats, dist.barrier)
        if ctx.is_main:
            results.put((name, seconds))
    dist.destroy_process_group()


def _format(rows, world_size):
    lines = [
        f"{world_size} gloo processes, {N_FEATURES}-d float64 codes; time: best of the repeats; "
        "peak: growth of rank 0's peak RSS; received: bytes that reached rank 0",
        "",
        "| rows | codes (MB) | to rank 0 (s) | GB/s | rank-0 peak (MB) | to all (s) "
        f"| all: rank-0 peak (MB) | subsample {MAX_SAMPLES} (s) | subsample received (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        n = row["n_samples"]
        megabytes = n * N_FEATURES * 8 / 1e6
        to_zero, zero_peak, _ = row["to_rank0"]
        to_all, all_peak, _ = row["to_all"]
        sub, _, sub_received = row["subsample"]

        def mb(value):
            return "n/a" if value is None else f"{value / 1e6:.1f}"

        lines.append(
            f"| {n:,} | {megabytes:.1f} | {to_zero:.4f} | {megabytes / 1e3 / to_zero:.2f} "
            f"| {mb(zero_peak)} | {to_all:.4f} | {mb(all_peak)} | {sub:.4f} "
            f"| {sub_received / 1e6:.2f} |"
        )
    return "\n".join(lines)


def _default_models():
    """``(name, n_parameters, batch_size, n_samples)`` of the default MLP
    models of both estimators on digits (built by a fit without training)."""
    import warnings

    from sklearn.datasets import load_digits

    from skdiffclust import ClusterDDPM, DeepDPGMMClusterer

    X, _ = load_digits(return_X_y=True)
    models = []
    for estimator in (ClusterDDPM(n_clusters=10), DeepDPGMMClusterer()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # The parameter count depends on n_features only: a few rows do.
            estimator.set_params(pretrain_epochs=0, n_iter=0, random_state=0).fit(X[:200])
        n_parameters = sum(
            p.numel()
            for net in estimator._networks().values()
            for p in net.parameters()
            if p.requires_grad
        )
        models.append((type(estimator).__name__, n_parameters, estimator.batch_size, len(X)))
    return models


def _format_models(models, timings, world_size):
    from skdiffclust.distributed import allreduce_bytes

    lines = [
        f"Gradient all-reduce of one DDP step, {world_size} gloo processes, float32; "
        "bytes per rank = 2 (p - 1) / p x 4 x parameters; epoch on digits",
        "",
        "| model | parameters | bytes per step per rank (MB) | all-reduce (s) "
        "| steps per epoch | bytes per epoch per rank (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, n_parameters, batch_size, n_samples in models:
        per_step = allreduce_bytes(4 * n_parameters, world_size)
        shard = math.ceil(n_samples / world_size)  # shards padded to equal size
        n_steps = math.ceil(shard / batch_size)
        lines.append(
            f"| {name} (MLP) | {n_parameters:,} | {per_step / 1e6:.2f} | {timings[name]:.4f} "
            f"| {n_steps} | {n_steps * per_step / 1e6:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k rows only")
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else [10_000, 100_000, 1_000_000]

    import torch.multiprocessing as mp

    # The children must find the package when the script runs from a checkout.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    # Every allocation above 64 kB gets its own mapping, returned to the system
    # when freed: otherwise glibc recycles freed memory of an earlier call and
    # a call's peak hides below the process's high-water mark.
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    models = _default_models()
    mp.start_processes(
        _rank_main,
        args=(
            args.world_size,
            free_port(),
            sizes,
            [(name, n_parameters) for name, n_parameters, _, _ in models],
            args.repeats,
            results,
        ),
        nprocs=args.world_size,
        start_method="spawn",
    )
    rows = [results.get() for _ in sizes]
    timings = dict(results.get() for _ in models)
    tables = "\n\n".join(
        [_format(rows, args.world_size), _format_models(models, timings, args.world_size)]
    )
    print(tables)
    return tables


if __name__ == "__main__":
    main()
