"""Dask as the engine of many fits (a search) and of batch inference.

One local cluster of two single-threaded worker processes serves the module.
"""

import logging

import numpy as np
import pytest
from _estimators import CLUSTER_DDPM_SMALL, ESTIMATORS
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, make_scorer
from sklearn.model_selection import GridSearchCV

from skdiffclust import ClusterDDPM, DeepDPGMMClusterer

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")
wrappers = pytest.importorskip("dask_ml.wrappers")
joblib = pytest.importorskip("joblib")

SEARCHED = [
    ClusterDDPM(n_clusters=3, **CLUSTER_DDPM_SMALL),
    next(est for est in ESTIMATORS if isinstance(est, DeepDPGMMClusterer)),
]


@pytest.fixture(scope="module")
def client():
    # Worker processes, as on a real cluster: every fit pickles the estimator
    # there and back. Dask gives each worker one BLAS/OpenMP thread, and the
    # estimators keep torch within that.
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _code_mean(estimator, X, y=None):
    """A score that any change in the fitted weights changes."""
    return float(np.mean(estimator.transform(X)))


@pytest.mark.parametrize("estimator", SEARCHED, ids=lambda est: type(est).__name__)
def test_grid_search_on_dask_matches_one_job(client, estimator):
    # Overlapping blobs: the two learning rates score differently.
    X, y = make_blobs(n_samples=90, n_features=4, centers=3, cluster_std=2.5, random_state=0)
    grid = {"learning_rate": [1e-2, 1e-3]}
    scoring = {"ari": make_scorer(adjusted_rand_score), "code_mean": _code_mean}

    def search():
        search = GridSearchCV(
            clone(estimator), grid, scoring=scoring, refit="ari", cv=2, error_score="raise"
        )
        return search.set_params(n_jobs=-1).fit(X, y)

    with joblib.parallel_backend("sequential"):
        local = search()
    with joblib.parallel_backend("dask"):
        on_dask = search()
    assert on_dask.best_params_ == local.best_params_
    for key in ("mean_test_ari", "split0_test_ari", "split1_test_ari", "mean_test_code_mean"):
        np.testing.assert_allclose(on_dask.cv_results_[key], local.cv_results_[key])
    np.testing.assert_array_equal(on_dask.predict(X), local.predict(X))


def test_parallel_post_fit_predicts_chunks_like_numpy(client, fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    X_big = np.concatenate([X] * 5)  # 300 rows
    chunked = da.from_array(X_big, chunks=(70, X_big.shape[1]))  # 5 chunks, the last short
    assert chunked.numblocks[0] > 1
    wrapper = wrappers.ParallelPostFit(model, predict_meta=np.array([], dtype=np.int64))
    np.testing.assert_array_equal(wrapper.predict(chunked).compute(), model.predict(X_big))
    # The codes are float32 and their last bits depend on the batch a row was
    # encoded with; the labels above do not.
    np.testing.assert_allclose(
        wrapper.transform(chunked).compute(), model.transform(X_big), rtol=1e-5, atol=1e-6
    )
