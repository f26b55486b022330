"""DDIM's quality/speed trade-off against the ancestral sampler, on digits.

Run as ``python -m benchmarks.sampling_quality`` (``--quick`` for fewer epochs
and samples). Fits ClusterDDPM on digits, trains a classifier on the real
digits (an MLPClassifier on X / 16), then generates samples from each cluster
with the ancestral sampler (all ``n_timesteps`` = 400 steps) and with DDIM at
10, 25, 50 and 100 steps. Quality is the purity of the generated samples: the
fraction whose classifier label equals the majority true label of the
training samples in their cluster (the same number for real training samples
is printed as the ceiling). Speed is seconds per 1,000 generated samples.
"""

import argparse
import os
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from skdiffclust import ClusterDDPM
from skdiffclust.metrics import clustering_accuracy

from .report import save_markdown


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and samples")
    parser.add_argument("--per-cluster", type=int, default=None, help="samples per cluster")
    parser.add_argument("--steps", type=int, nargs="*", default=[10, 25, 50, 100])
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    epochs = (10, 5) if args.quick else (30, 30)  # the defaults are (30, 30)
    per_cluster = args.per_cluster or (30 if args.quick else 100)

    digits = load_digits()
    X, y = digits.data, digits.target
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    classifier = MLPClassifier((128,), max_iter=500, random_state=0).fit(X_train / 16, y_train)
    classifier_acc = classifier.score(X_test / 16, y_test)

    start = time.perf_counter()
    load_fit = os.getloadavg()[0]
    model = ClusterDDPM(
        n_clusters=10, pretrain_epochs=epochs[0], n_iter=epochs[1], random_state=0
    ).fit(X)
    fit_seconds = time.perf_counter() - start
    acc = clustering_accuracy(y, model.labels_)
    majority = np.array(
        [
            np.bincount(y[model.labels_ == k], minlength=10).argmax()
            for k in range(model.n_clusters_)
        ]
    )
    real_purity = np.mean(classifier.predict(X / 16) == majority[model.labels_])

    rows = []
    for n_steps in [None, *args.steps]:
        load = os.getloadavg()[0]
        generated, labels, seconds = [], [], 0.0
        for k in range(model.n_clusters_):
            model.set_params(random_state=k)
            start = time.perf_counter()
            X_new, _ = model.sample(per_cluster, cluster=k, n_steps=n_steps)
            seconds += time.perf_counter() - start
            generated.append(X_new)
            labels.append(np.full(per_cluster, k))
        generated = np.clip(np.concatenate(generated), 0, 16)
        labels = np.concatenate(labels)
        purity = np.mean(classifier.predict(generated / 16) == majority[labels])
        name = "ancestral, 400 steps" if n_steps is None else f"DDIM, {n_steps} steps"
        rows.append((name, purity, 1000 * seconds / len(labels), load))
        print(rows[-1], flush=True)
    model.set_params(random_state=0)

    ancestral_seconds = rows[0][2]
    lines = [
        f"# DDIM vs ancestral sampling on digits ({'quick' if args.quick else 'full'})",
        "",
        f"ClusterDDPM(n_clusters=10, pretrain_epochs={epochs[0]}, n_iter={epochs[1]}), "
        f"otherwise defaults: fit {fit_seconds:.0f} s (load {load_fit:.2f}), "
        f"ACC {acc:.3f}, {model.n_clusters_} clusters. Classifier: MLPClassifier on X/16, "
        f"test accuracy {classifier_acc:.3f}. {per_cluster} samples per cluster, "
        "values clipped to the data range [0, 16].",
        "",
        f"Purity of the real training samples under the same classifier: {real_purity:.3f}.",
        "",
        "| sampler | purity of generated samples | s per 1,000 samples | speed-up | load 1m |",
        "|---|---|---|---|---|",
    ]
    for name, purity, seconds, load in rows:
        lines.append(
            f"| {name} | {purity:.3f} | {seconds:.2f} | {ancestral_seconds / seconds:.1f}x "
            f"| {load:.2f} |"
        )
    markdown = "\n".join(lines) + "\n"
    print("\n" + markdown)
    save_markdown(markdown, "sampling", quick=args.quick, out=args.out)


if __name__ == "__main__":
    main()
