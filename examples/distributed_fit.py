"""
========================================
Data-parallel fit with torch.distributed
========================================

Not run by the documentation build: launch it with ``torchrun``, which starts
one process per rank::

    torchrun --nproc-per-node 2 examples/distributed_fit.py

Every rank loads the same data and calls ``fit``; because the process group
is initialised, the estimator trains data-parallel: each rank takes its share
of every step's rows, with the networks wrapped in ``DistributedDataParallel``
and batch statistics computed over all ranks; the E-step gathers the latent
codes of all ranks, rank 0 fits the mixture and sends it to the others. Every
rank ends with the same fitted model; only rank 0 reports and saves it. Use
``gloo`` on CPUs and ``nccl`` on GPUs (one GPU per rank, ``device="cuda"``).

The batch size is per rank: with 2 ranks, ``batch_size=64`` averages the
gradients of 128 rows per step, as one process with ``batch_size=128`` does.
"""

import argparse
import pickle
import time

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits

from skdiffclust import ClusterDDPM, DeepDPGMMClusterer
from skdiffclust.distributed import count_communication
from skdiffclust.metrics import clustering_accuracy

ESTIMATORS = {"ClusterDDPM": ClusterDDPM, "DeepDPGMM": DeepDPGMMClusterer}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[1])
    parser.add_argument("--estimator", choices=sorted(ESTIMATORS), default="DeepDPGMM")
    parser.add_argument("--global-batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="gloo", help="gloo (CPU) or nccl (GPUs)")
    parser.add_argument("--save", default=None, help="where rank 0 pickles the model")
    args = parser.parse_args(argv)

    dist.init_process_group(args.backend)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)  # one core per rank on a CPU machine

    X, y = load_digits(return_X_y=True)
    params = {"random_state": args.seed, "batch_size": args.global_batch_size // world_size}
    if args.estimator == "ClusterDDPM":
        params["n_clusters"] = 10
    model = ESTIMATORS[args.estimator](**params)
    start = time.perf_counter()
    with count_communication() as log:
        model.fit(X)
    seconds = time.perf_counter() - start
    epochs = model.pretrain_epochs_ + model.n_iter
    if rank == 0:
        acc = clustering_accuracy(y, model.labels_)
        print(
            f"{args.estimator}, {world_size} process(es), batch {params['batch_size']} per "
            f"rank: ACC {acc:.3f}, {model.n_clusters_} clusters, fit {seconds:.1f} s, "
            f"{log.bytes_sent / epochs / 1e6:.2f} MB sent per epoch by rank 0"
        )
        if args.save:
            with open(args.save, "wb") as f:
                pickle.dump(model, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
