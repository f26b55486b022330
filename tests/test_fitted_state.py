"""The fitted state is self-contained: after ``fit``, changing parameters affects
only the next ``fit``; loading, inference and sampling read fitted attributes.

Also the clear errors and messages of the integrity review: sampling before
fit, non-finite guidance, divergence advice, tiny values, small data.
"""

import pickle

import numpy as np
import pytest
import torch
from _estimators import ESTIMATORS, blobs, estimator_id
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV

from skdiffclust import ClusterDDPM, DeepDPGMMClusterer
from skdiffclust._base import TrainingDivergedError

MLP_ESTIMATORS = [e for e in ESTIMATORS if e.image_shape is None]


def _fitted(estimator, **params):
    X, _ = blobs()
    return clone(estimator).set_params(**params).fit(X), X


def _architecture_changes(model):
    changes = [{"latent_dim": model.latent_dim + 5}, {"hidden_dims": (7, 5)}]
    if model.image_shape is not None:
        changes.append({"image_shape": (1, 2, -1), "conv_width": 16})
    return changes


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=estimator_id)
def test_changing_the_architecture_after_fit_keeps_the_fitted_model(estimator):
    model, X = _fitted(estimator)
    labels, Z = model.predict(X), model.transform(X)
    names = model.get_feature_names_out()
    for change in _architecture_changes(model):
        changed = pickle.loads(pickle.dumps(model)).set_params(**change)
        loaded = pickle.loads(pickle.dumps(changed))
        np.testing.assert_array_equal(loaded.predict(X), labels)
        np.testing.assert_array_equal(loaded.transform(X), Z)
        np.testing.assert_array_equal(loaded.get_feature_names_out(), names)
        assert loaded.sample(3)[0].shape == (3, X.shape[1])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", MLP_ESTIMATORS, ids=estimator_id)
def test_set_params_after_fit_then_pickle_set_output_and_score(estimator):
    model, X = _fitted(estimator)
    latent_dim = model.latent_dim
    model.set_params(latent_dim=latent_dim + 5, hidden_dims=(9,))
    loaded = pickle.loads(pickle.dumps(model))
    assert len(loaded.get_feature_names_out()) == latent_dim
    loaded.set_output(transform="pandas")
    assert list(loaded.transform(X).columns) == list(loaded.get_feature_names_out())
    if isinstance(loaded, ClusterDDPM):
        assert np.all(np.isfinite(loaded.score_samples(X[:5])))


def test_n_timesteps_after_fit_changes_neither_sample_nor_score(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    model = pickle.loads(pickle.dumps(model))  # a copy: the fixture is shared
    before = model.sample(4)[0], model.score_samples(X[:4])
    model.set_params(n_timesteps=5)
    after = model.sample(4)[0], model.score_samples(X[:4])
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert model.n_timesteps_ == 10


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", MLP_ESTIMATORS, ids=estimator_id)
def test_one_latent_dimension(estimator):
    model, X = _fitted(estimator, latent_dim=1)
    assert model.transform(X).shape == (len(X), 1)
    assert np.isfinite(model.history_["latent_effective_dim"]).all()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", MLP_ESTIMATORS, ids=estimator_id)
def test_numpy_scalars_are_accepted(estimator):
    params = {"batch_size": np.int64(16), "n_iter": np.int32(1), "learning_rate": np.float32(1e-2)}
    model, X = _fitted(estimator, latent_dim=np.int64(2), **params)
    assert model.labels_.shape == (len(X),)


def test_grid_search_over_a_numpy_range_of_batch_sizes():
    X, y = blobs()
    search = GridSearchCV(
        clone(MLP_ESTIMATORS[0]),
        {"batch_size": np.arange(16, 48, 16)},
        scoring="adjusted_rand_score",
        cv=2,
        error_score="raise",
    ).fit(X, y)
    assert search.best_params_["batch_size"] in (16, 32)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=estimator_id)
def test_sampling_and_feature_names_before_fit_raise_not_fitted(estimator):
    with pytest.raises(NotFittedError):
        clone(estimator).sample(2)
    with pytest.raises(NotFittedError):
        clone(estimator).get_feature_names_out()


@pytest.mark.parametrize("guidance", [np.nan, np.inf, -1.0])
def test_non_finite_guidance_is_rejected(fitted_cluster_ddpm, guidance):
    model, _ = fitted_cluster_ddpm
    with pytest.raises(ValueError, match="guidance must be a finite non-negative number"):
        model.sample(2, guidance=guidance)


def test_divergence_during_em_names_the_em_learning_rate():
    X, _ = blobs()
    model = clone(MLP_ESTIMATORS[0]).set_params(em_learning_rate=1e6, n_iter=5)
    with pytest.raises(TrainingDivergedError, match=r"Lower em_learning_rate \(now 1000000"):
        model.fit(X)


@pytest.mark.parametrize("estimator", MLP_ESTIMATORS, ids=estimator_id)
def test_values_too_small_to_rescale_say_so(estimator):
    X, _ = blobs()
    with pytest.raises(ValueError, match="too small to rescale"):
        clone(estimator).fit(X * 5e-324)


def _tiny_deep_dpgmm(**params):
    """DeepDPGMMClusterer with a 2-D latent behind one hidden layer of 16."""
    return DeepDPGMMClusterer(hidden_dims=(16,), latent_dim=2, random_state=0, **params)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_deep_dpgmm_caps_its_truncation_at_the_number_of_rows():
    X, _ = blobs(n_samples=12)
    model = _tiny_deep_dpgmm(n_components=30, pretrain_epochs=2, n_iter=1).fit(X)
    assert model.n_components_ == 12
    assert model.mixture_.n_components == 12
    assert model.get_params()["n_components"] == 30


def test_deep_dpgmm_warns_when_it_keeps_one_cluster_or_hits_the_truncation():
    X, _ = blobs(n_samples=60)
    short = dict(pretrain_epochs=5, n_iter=0)
    # The history reads as plain integers, not numpy reprs.
    single = (
        r"kept a single cluster \(clusters after each E-step: \[1\]\).*lower cluster_scale"
        r".*select them \(or reduce the dimension\) first"
    )
    with pytest.warns(ConvergenceWarning, match=single):
        _tiny_deep_dpgmm(n_components=5, cluster_scale=1e3, **short).fit(X)
    # 12 rows: too few to double the truncation (5 rows per component).
    with pytest.warns(ConvergenceWarning, match="used all n_components=2.*raise n_components"):
        _tiny_deep_dpgmm(n_components=2, **short).fit(X[:12])


def test_deep_dpgmm_doubles_a_truncation_that_the_first_e_step_fills():
    X, y = blobs(n_samples=60)
    model = _tiny_deep_dpgmm(n_components=1, pretrain_epochs=20, n_iter=0).fit(X)
    assert model.n_components_ in (4, 8)
    assert model.n_clusters_ < model.n_components_


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_warm_start_keeps_a_grown_truncation():
    X, _ = blobs(n_samples=60)
    model = _tiny_deep_dpgmm(n_components=1, pretrain_epochs=20, n_iter=0).fit(X)
    grown = model.n_components_
    model.set_params(warm_start=True, n_iter=1).fit(X)
    assert model.n_components_ == grown == model.mixture_.n_components


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=estimator_id)
def test_inference_reads_any_layout_and_integer_input_exactly(estimator):
    model, X = _fitted(estimator)
    X = np.round(X * 10)  # integral values, so that integer arrays hold them exactly
    methods = [model.predict, model.transform]
    if hasattr(model, "score_samples"):
        methods.append(model.score_samples)
    expected = [method(X) for method in methods]
    read_only = X.copy()
    read_only.flags.writeable = False
    variants = {
        "read-only": (read_only, slice(None)),
        "reversed rows": (X[::-1], slice(None, None, -1)),
        "Fortran order": (np.asfortranarray(X), slice(None)),
        "int64": (X.astype(np.int64), slice(None)),
        "int16": (X.astype(np.int16), slice(None)),
    }
    for name, (variant, order) in variants.items():
        for method, result in zip(methods, expected, strict=True):
            np.testing.assert_array_equal(method(variant), result[order], err_msg=name)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", MLP_ESTIMATORS, ids=estimator_id)
@pytest.mark.parametrize(
    "value, match",
    [(np.nan, "Input X contains NaN"), (np.inf, "Input X contains infinity"), (1e300, "float32")],
)
def test_non_finite_input_at_inference_gives_scikit_learns_errors(estimator, value, match):
    model, X = _fitted(estimator)
    X = X.copy()
    X[-1, 0] = value
    for name in ("predict", "predict_proba", "transform", "score_samples"):
        if hasattr(model, name):
            with pytest.raises(ValueError, match=match):
                getattr(model, name)(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", MLP_ESTIMATORS, ids=estimator_id)
def test_a_pickled_model_warm_starts_with_adams_state(estimator):
    X, _ = blobs()
    model = clone(estimator).fit(X)
    loaded = pickle.loads(pickle.dumps(model))
    saved, restored = model._optimizer_state, loaded._optimizer_state
    assert restored["param_groups"] == saved["param_groups"]
    for key, state in saved["state"].items():
        for name, value in state.items():
            torch.testing.assert_close(restored["state"][key][name], value)
    loaded.set_params(warm_start=True, n_iter=1).fit(X)
    per_epoch = -(-len(X) // model.batch_size)
    for key, state in saved["state"].items():
        assert int(loaded._optimizer_state["state"][key]["step"]) == int(state["step"]) + per_epoch
