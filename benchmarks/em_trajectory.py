"""Trajectory of a deep clusterer's EM loop, one row per E-step.

A fit reports only where it ends. This script follows the loop itself: after
every E-step (the first one after pretraining, then one per EM iteration) it
records, on all the training codes,

- the clusters the estimator's mixture occupies and their ACC / NMI / ARI
  against the true classes;
- the same for a *fresh* mixture fitted on the same codes with the same
  settings (for DeepDPGMMClusterer: a new Ward start and Dirichlet process),
  which tells whether a change in the count comes from the codes or from the
  warm-started refit;
- the accuracy of a Gaussian mixture started from the true classes (one
  component per class, at the class means and covariances) and run to
  convergence, and its mean log-likelihood minus that of the same mixture
  started by k-means. A class-started accuracy well above the fresh one means
  the codes hold a mixture optimum aligned with the classes; with a gap near
  or above zero a better start could find it, with a clearly negative gap the
  likelihood itself prefers another partition, so the codes must change;
- the shape of the latent space: its effective dimension (the participation
  ratio of the covariance spectrum, ``history_["latent_effective_dim"]``) and
  the share of the variance along the largest principal direction.

The estimator runs its normal ``fit`` (one optimiser, one loop); the rows are
recorded by a :class:`~skdiffclust.callbacks.Callback` after each E-step.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.em_trajectory --method DeepDPGMM --dataset blobs
    OMP_NUM_THREADS=1 python -m benchmarks.em_trajectory --method DeepDPGMM --dataset digits \\
        --params '{"latent_dim": 16, "cluster_scale": 2.1}' --n-iter 10

Prints a Markdown table.
"""

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from skdiffclust import ClusterDDPM, DeepDPGMMClusterer
from skdiffclust.callbacks import Callback
from skdiffclust.metrics import effective_dimension

from .measure import clustering_scores
from .registry import DATASETS, TINY_DEEP_PARAMS, load_dataset

ESTIMATORS = {"ClusterDDPM": ClusterDDPM, "DeepDPGMM": DeepDPGMMClusterer}


def class_started_mixture(Z, y, covariance_type, seed):
    """Accuracy of a Gaussian mixture started from the classes ``y`` on codes ``Z``,
    and its mean log-likelihood minus that of the same mixture started by k-means."""
    classes = np.unique(y)
    weights = np.array([np.mean(y == c) for c in classes])
    means = np.stack([Z[y == c].mean(axis=0) for c in classes])
    reg = 1e-6 * np.var(Z, axis=0).mean()  # GaussianMixture's reg_covar, relative to Z
    if covariance_type == "full":
        eye = np.eye(Z.shape[1])
        precisions = np.stack(
            [np.linalg.inv(np.cov(Z[y == c], rowvar=False) + reg * eye) for c in classes]
        )
    else:
        precisions = np.stack([1.0 / (np.var(Z[y == c], axis=0) + reg) for c in classes])
    settings = dict(n_components=len(classes), covariance_type=covariance_type, reg_covar=reg)
    started = GaussianMixture(
        weights_init=weights, means_init=means, precisions_init=precisions, **settings
    ).fit(Z)
    by_kmeans = GaussianMixture(random_state=seed, **settings).fit(Z)
    acc = clustering_scores(y, started.predict(Z))["acc"]
    return acc, started.score(Z) - by_kmeans.score(Z)


class TrajectoryRecorder(Callback):
    """Appends a row to ``rows`` after each E-step (see the module's docstring).

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        The true classes of the training rows.
    seed : int
        Seed of the fresh mixture and of the k-means-started one.
    """

    #: Variational iterations of the fresh mixture fit.
    fresh_max_iter = 200

    def __init__(self, y, seed):
        self.y = y
        self.seed = seed
        self.rows = []

    def on_e_step_end(self, estimator, *, iteration, latents, mixture, n_clusters):
        Z, y = latents, self.y
        # A clone is unfitted: its fit starts afresh, as the first E-step did.
        fresh = clone(mixture).set_params(max_iter=self.fresh_max_iter, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fresh.fit(Z)
        eigenvalues = np.linalg.eigvalsh(np.cov(Z, rowvar=False))
        own = clustering_scores(y, mixture.predict(Z))
        new = clustering_scores(y, fresh.predict(Z))
        class_acc, log_likelihood_gap = class_started_mixture(
            Z, y, mixture.covariance_type, self.seed
        )
        self.rows.append(
            {
                "step": iteration,
                "clusters": own["n_clusters_found"],
                "acc": own["acc"],
                "nmi": own["nmi"],
                "ari": own["ari"],
                "fresh clusters": new["n_clusters_found"],
                "fresh acc": new["acc"],
                "class-started acc": class_acc,
                "its log-lik gap": log_likelihood_gap,
                "effective dim": effective_dimension(Z),
                "top direction": eigenvalues[-1] / eigenvalues.sum(),
            }
        )


def trajectory(method, dataset, seed, params, tiny=False):
    """Fit ``method`` on ``dataset``; return the fitted estimator and the rows of its E-steps.

    ``tiny`` uses the benchmark harness's tiny data subset and network settings
    (under ``params``), for a smoke test.
    """
    X, y = load_dataset(dataset, tiny=tiny)
    recorder = TrajectoryRecorder(y, seed)
    if tiny:
        params = {**TINY_DEEP_PARAMS, **params}
    if method == "ClusterDDPM":
        params = {"n_clusters": len(np.unique(y)), **params}
    model = ESTIMATORS[method](random_state=seed, callbacks=[recorder], **params).fit(X)
    return model, recorder.rows


def to_markdown(rows):
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=sorted(ESTIMATORS), default="DeepDPGMM")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--n-iter", type=int, default=None, help="EM iterations (default: the estimator's)"
    )
    parser.add_argument("--params", default="{}", help="estimator parameters as a JSON object")
    parser.add_argument(
        "--tiny", action="store_true", help="200 rows and tiny networks (smoke test)"
    )
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    if args.n_iter is not None:
        params["n_iter"] = args.n_iter
    start = time.perf_counter()
    _, rows = trajectory(args.method, args.dataset, args.seed, params, tiny=args.tiny)
    print(
        f"{args.method} on {args.dataset}, seed {args.seed}, parameters {params or 'default'} "
        f"({time.perf_counter() - start:.0f} s)\n"
    )
    print(to_markdown(rows))
    return rows


if __name__ == "__main__":
    main()
