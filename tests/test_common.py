"""Behaviour every estimator shares: scikit-learn compatibility, reproducibility,
persistence, input validation, divergence, interruption and large inputs.

Each test runs on every entry of ``tests/_estimators.ESTIMATORS``.
"""

import io
import pickle
import re
import tracemalloc
from unittest import mock

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _estimators import ESTIMATORS, blobs, estimator_id
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score, make_scorer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skdiffclust._base import INFERENCE_BATCH_SIZE, TrainingDivergedError
from skdiffclust.metrics import effective_dimension

#: Checks of ``sklearn.utils.estimator_checks`` expected to fail, by estimator
#: id, each with the reason: ``{"ClusterDDPM-mlp": {"check_name": "reason"}}``.
EXPECTED_FAILED_CHECKS = {}

#: A fitted estimator's state that must not change when it is left "as before".
FITTED_OUTPUTS = ("predict", "predict_proba", "transform")

estimators = pytest.mark.parametrize(
    "estimator", ESTIMATORS, ids=[estimator_id(e) for e in ESTIMATORS]
)


def _n_clusters_param(estimator):
    params = estimator.get_params()
    return "n_clusters" if "n_clusters" in params else "n_components"


_FITTED = {}


def _fitted(estimator):
    """A fitted copy of ``estimator`` on ``blobs()``, cached per estimator."""
    key = estimator_id(estimator), repr(estimator)
    if key not in _FITTED:
        _FITTED[key] = clone(estimator).fit(blobs()[0])
    return pickle.loads(pickle.dumps(_FITTED[key]))


def _outputs(model, X):
    return {name: getattr(model, name)(X) for name in FITTED_OUTPUTS}


def _assert_same_outputs(first, second):
    for name in FITTED_OUTPUTS:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def _assert_no_training(monkeypatch, estimator):
    """Make any attempt to build networks fail the test: validation must come first."""

    def fail(self, spec):
        raise AssertionError("training started before the input was validated")

    monkeypatch.setattr(type(estimator), "_build_networks", fail)


# --------------------------------------------------------------------- sklearn
@parametrize_with_checks(
    ESTIMATORS,
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(estimator_id(est), {}),
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_expected_failed_checks_have_reasons():
    ids = {estimator_id(e) for e in ESTIMATORS}
    for name, checks in EXPECTED_FAILED_CHECKS.items():
        assert name in ids
        assert all(isinstance(reason, str) and reason for reason in checks.values())


@estimators
def test_pipeline_with_standard_scaler(estimator):
    X, _ = blobs()
    X = X * 50 + 100
    pipe = make_pipeline(StandardScaler(), clone(estimator)).fit(X)
    alone = clone(estimator).fit(StandardScaler().fit_transform(X))
    np.testing.assert_array_equal(pipe.predict(X), alone.predict(StandardScaler().fit_transform(X)))
    np.testing.assert_array_equal(pipe[-1].labels_, alone.labels_)
    assert pipe.transform(X).shape == (X.shape[0], estimator.latent_dim)


@estimators
def test_grid_search_same_result_with_one_and_two_jobs(estimator):
    X, y = blobs(n_samples=90)
    grid = {"learning_rate": [1e-2, 1e-3]}
    scorer = make_scorer(adjusted_rand_score)
    searches = [
        GridSearchCV(clone(estimator), grid, scoring=scorer, cv=2, n_jobs=n_jobs).fit(X, y)
        for n_jobs in (1, 2)
    ]
    assert searches[0].best_params_ == searches[1].best_params_
    np.testing.assert_allclose(
        searches[0].cv_results_["mean_test_score"],
        searches[1].cv_results_["mean_test_score"],
    )
    np.testing.assert_array_equal(searches[0].predict(X), searches[1].predict(X))


# ----------------------------------------------------- reproducibility, state
@estimators
def test_same_random_state_same_model(estimator):
    X, _ = blobs()
    first = clone(estimator).fit(X)
    second = clone(estimator).fit(X)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    _assert_same_outputs(_outputs(first, X), _outputs(second, X))
    for key in ("pretrain_loss", "loss", "n_clusters"):
        assert first.history_[key] == second.history_[key]


@estimators
@pytest.mark.parametrize("random_state", [0, None])
def test_global_rng_untouched(estimator, random_state):
    X, _ = blobs()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    model = clone(estimator).set_params(random_state=random_state).fit(X)
    model.predict(X)
    model.transform(X)
    if hasattr(model, "sample"):
        model.sample(3)
    assert torch.equal(torch.get_rng_state(), torch_state)
    if random_state is not None:
        # With random_state=None, scikit-learn's convention is to draw from
        # numpy's global generator; any fixed random_state leaves it alone.
        after = np.random.get_state()
        assert after[0] == np_state[0]
        np.testing.assert_array_equal(after[1], np_state[1])
        assert after[2:] == np_state[2:]


# ----------------------------------------------------------------- persistence
def _pickle_round_trip(model):
    return pickle.loads(pickle.dumps(model))


def _joblib_round_trip(model, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    return joblib.load(path)


@estimators
@pytest.mark.parametrize("method", ["pickle", "joblib"])
def test_persistence_round_trip(estimator, method, tmp_path):
    X, _ = blobs()
    model = _fitted(estimator)
    restored = (
        _pickle_round_trip(model) if method == "pickle" else _joblib_round_trip(model, tmp_path)
    )
    _assert_same_outputs(_outputs(model, X), _outputs(restored, X))
    np.testing.assert_array_equal(model.labels_, restored.labels_)
    if hasattr(model, "sample"):
        for a, b in zip(model.sample(4), restored.sample(4), strict=True):
            np.testing.assert_array_equal(a, b)
    # The networks are stored as torch bytes, not as pickled modules.
    state = model.__getstate__()
    assert all(isinstance(state[name + "_"], bytes) for name in model._network_names)


@estimators
def test_clone_gives_the_same_model(estimator):
    X, _ = blobs()
    model = _fitted(estimator)
    unfitted = clone(model)
    with pytest.raises(NotFittedError):
        unfitted.predict(X)
    _assert_same_outputs(_outputs(model, X), _outputs(unfitted.fit(X), X))


def _save_as_cuda(obj, f, *args, **kwargs):
    """``torch.save`` that records every storage as living on ``cuda:0``: the
    bytes a CUDA-trained model stores when its tensors are saved as they are."""
    with mock.patch.object(torch.serialization, "location_tag", lambda storage: "cuda:0"):
        return _TORCH_SAVE(obj, f, *args, **kwargs)


_TORCH_SAVE = torch.save


@estimators
@pytest.mark.skipif(torch.cuda.is_available(), reason="simulates a CPU-only machine")
def test_cuda_saved_model_loads_on_cpu(estimator, monkeypatch):
    X, _ = blobs()
    model = _fitted(estimator)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", _save_as_cuda)
        blob = pickle.dumps(model)
        cuda_state = model.__getstate__()
    # The simulation is real: torch itself refuses these bytes on this machine
    # without a map location.
    for name in model._network_names:
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(io.BytesIO(cuda_state[name + "_"]), weights_only=True)
    restored = pickle.loads(blob)
    for net in restored._networks().values():
        assert all(p.device.type == "cpu" for p in net.parameters())
    _assert_same_outputs(_outputs(model, X), _outputs(restored, X))


@estimators
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_trained_model_pickles_to_cpu(estimator):  # pragma: no cover - GPU only
    X, _ = blobs()
    model = clone(estimator).set_params(device="cuda").fit(X)
    state = model.__getstate__()
    for name in model._network_names:
        weights = torch.load(io.BytesIO(state[name + "_"]), weights_only=True)
        assert all(t.device.type == "cpu" for t in weights.values())
    np.testing.assert_array_equal(_pickle_round_trip(model).predict(X), model.predict(X))


@estimators
def test_unpickling_uses_safe_loading(estimator, monkeypatch):
    model = _fitted(estimator)
    blob = pickle.dumps(model)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    pickle.loads(blob)
    assert len(calls) == len(model._network_names) + 1  # and Adam's state
    assert all(kwargs.get("weights_only") is True for kwargs in calls)


# -------------------------------------------------------------------- bad input
def _with_nan(X):
    X = X.copy()
    X[3, 1] = np.nan
    return X


def _with_inf(X):
    X = X.copy()
    X[3, 1] = np.inf
    return X


BAD_X = {
    "nan": (_with_nan, ValueError, "Input X contains NaN"),
    "inf": (_with_inf, ValueError, "Input X contains infinity"),
    "sparse": (sp.csr_matrix, TypeError, r"Sparse data was passed.*\.toarray\(\)"),
    "strings": (
        lambda X: np.where(X > 0, "high", "low").astype(object),
        ValueError,
        "could not convert string to float",
    ),
    "empty": (lambda X: X[:0], ValueError, r"0 sample\(s\)"),
    "no features": (lambda X: X[:, :0], ValueError, r"0 feature\(s\)"),
    "one sample": (lambda X: X[:1], ValueError, r"1 sample\(s\).*minimum of 2"),
    "constant": (lambda X: np.full_like(X, 3.0), ValueError, "all identical"),
    "1-D": (lambda X: X[:, 0], ValueError, "Expected 2D array, got 1D array"),
    "3-D": (lambda X: X.reshape(len(X), 2, 2), ValueError, "Found array with dim 3"),
}


@estimators
@pytest.mark.parametrize("case", list(BAD_X))
def test_bad_input_gives_clear_error(estimator, case, monkeypatch):
    make_bad, error, match = BAD_X[case]
    X, _ = blobs()
    bad = make_bad(X)
    model = clone(estimator)
    _assert_no_training(monkeypatch, model)
    with pytest.raises(error, match=match):
        model.fit(bad)
    assert not hasattr(model, "n_features_in_")


@estimators
def test_constant_features_are_fine(estimator):
    X, y = blobs()
    X = np.hstack([X, np.full((len(X), 2), 7.0)])
    for scaling in ("global", "feature", None):
        labels = clone(estimator).set_params(scaling=scaling).fit_predict(X)
        assert set(np.unique(labels)) <= set(range(3))


@estimators
def test_fewer_samples_than_clusters(estimator, monkeypatch):
    X, _ = blobs()
    name = _n_clusters_param(estimator)
    model = clone(estimator).set_params(**{name: 5})
    if name == "n_components":
        # A truncation level, not a number of clusters: it is capped at the rows.
        model.fit(X[:4])
        assert model.n_components_ == 4 and model.n_clusters_ <= 4
        np.testing.assert_array_equal(model.predict(X[:4]), model.labels_)
        return
    _assert_no_training(monkeypatch, model)
    with pytest.raises(ValueError, match=f"n_samples=4 should be >= {name}=5"):
        model.fit(X[:4])


@estimators
def test_image_shape_not_matching_n_features(estimator, monkeypatch):
    X, _ = blobs()
    model = clone(estimator).set_params(image_shape=(1, 3, 3))
    _assert_no_training(monkeypatch, model)
    with pytest.raises(ValueError, match=r"image_shape=\(1, 3, 3\) does not match X's 4 features"):
        model.fit(X)
    model.set_params(image_shape=(1, 3, -1))
    with pytest.raises(ValueError, match=r"image_shape=\(1, 3, -1\) does not match"):
        model.fit(X)


@estimators
@pytest.mark.parametrize("method", ["predict", "predict_proba", "transform"])
def test_predict_with_other_n_features(estimator, method):
    X, _ = blobs()
    model = _fitted(estimator)
    with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 4 features"):
        getattr(model, method)(X[:, :3])


def _bad_params(estimator):
    cases = [
        ({"pretrain_epochs": -1}, "'pretrain_epochs' parameter"),
        ({"n_iter": -2}, "'n_iter' parameter"),
        ({"learning_rate": 0.0}, "'learning_rate' parameter"),
        ({"batch_size": 1}, "'batch_size' parameter"),
        ({"scaling": "minmax"}, "'scaling' parameter"),
        ({"device": "tpu"}, "device='tpu' is not valid"),
        ({"device": "cuda:x"}, "device='cuda:x' is not valid"),
        ({"hidden_dims": (16, 0)}, "hidden_dims must contain positive integers"),
        ({"image_shape": (1, 4)}, "image_shape must be 3 positive integers"),
        ({"image_shape": (1, -1, -1)}, "only one entry -1"),
    ]
    if not torch.cuda.is_available():
        cases.append(({"device": "cuda"}, "CUDA is not available"))
    if "alpha" in estimator.get_params():
        cases += [({"alpha": 0.0}, "'alpha' parameter"), ({"alpha": 1.5}, "'alpha' parameter")]
    return cases


BAD_PARAMS = [
    pytest.param(estimator, params, match, id=f"{estimator_id(estimator)}-{params}")
    for estimator in ESTIMATORS
    for params, match in _bad_params(estimator)
]


@pytest.mark.parametrize("estimator, params, match", BAD_PARAMS)
def test_bad_parameters(estimator, params, match, monkeypatch):
    X, _ = blobs()
    model = clone(estimator).set_params(**params)
    _assert_no_training(monkeypatch, model)
    with pytest.raises(ValueError, match=match):
        model.fit(X)


CLEAR_ERRORS = "too large to represent in float32|all identical|Training diverged"


@estimators
@given(
    X=arrays(
        np.float64,
        shape=st.tuples(st.integers(6, 12), st.integers(1, 3)),
        elements=st.floats(-1e30, 1e30, allow_nan=False),
    ),
    exponent=st.integers(-30, 30),
)
def test_extreme_magnitudes_fit_or_fail_clearly(estimator, X, exponent):
    X = X * 10.0**exponent
    model = clone(estimator).set_params(pretrain_epochs=1, n_iter=1)
    n_clusters = model.get_params()[_n_clusters_param(model)]
    try:
        model.fit(X)
    except (ValueError, TrainingDivergedError) as exc:
        assert any(part in str(exc) for part in CLEAR_ERRORS.split("|")), str(exc)
        return
    labels = model.predict(X)
    assert labels.dtype.kind == "i"
    assert np.all((labels >= 0) & (labels < min(n_clusters, model.n_clusters_)))
    np.testing.assert_array_equal(labels, model.labels_)
    assert np.all(np.isfinite(model.transform(X)))


# ------------------------------------------------------------------ divergence
@estimators
def test_divergence_on_first_fit_leaves_estimator_unfitted(estimator):
    X, _ = blobs()
    model = clone(estimator).set_params(learning_rate=1e6)
    before = dict(vars(model))
    with pytest.raises(
        TrainingDivergedError, match=r"Training diverged.*Lower learning_rate \(now"
    ):
        model.fit(X)
    assert vars(model) == before
    with pytest.raises(NotFittedError):
        model.predict(X)


@estimators
@pytest.mark.parametrize("warm_start", [False, True])
def test_divergence_on_refit_leaves_estimator_as_before(estimator, warm_start):
    X, _ = blobs()
    model = _fitted(estimator)
    expected = _outputs(model, X)
    history = model.history_
    # New data of another scale: a fresh refit would change the scaling too.
    # A warm start runs only EM iterations, which may have their own rate.
    rates = {
        name: 1e6 for name in ("learning_rate", "em_learning_rate") if name in model.get_params()
    }
    model.set_params(warm_start=warm_start, **rates)
    with pytest.raises(TrainingDivergedError):
        model.fit(X * 10 + 5)
    _assert_same_outputs(_outputs(model, X), expected)
    assert model.history_ == history
    model.set_params(warm_start=False, **{name: estimator.get_params()[name] for name in rates})
    np.testing.assert_array_equal(model.predict(X), expected["predict"])


# ---------------------------------------------------------------- interruption
def _interrupt_after(function, n):
    """``function`` wrapped to raise KeyboardInterrupt on its ``n``-th call
    (a plain function, so that it also works as a method)."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(None)
        if len(calls) == n:
            raise KeyboardInterrupt
        return function(*args, **kwargs)

    return wrapper


def _batches_per_epoch(model, n_samples):
    return -(-n_samples // model.batch_size)


@estimators
def test_interrupt_during_pretraining_leaves_estimator_unfitted(estimator, monkeypatch):
    X, _ = blobs()
    model = clone(estimator)
    before = dict(vars(model))
    cls = type(model)
    monkeypatch.setattr(cls, "_pretrain_loss", _interrupt_after(cls._pretrain_loss, 2))
    with pytest.raises(KeyboardInterrupt):
        model.fit(X)
    assert vars(model) == before
    with pytest.raises(NotFittedError):
        model.predict(X)


@estimators
def test_interrupt_keeps_last_iteration_and_warm_start_continues(estimator, monkeypatch):
    X, _ = blobs()
    model = clone(estimator).set_params(n_iter=3)
    cls = type(model)
    per_epoch = _batches_per_epoch(model, len(X))
    # The first batch of the second EM iteration: one iteration is complete.
    interrupt = _interrupt_after(cls._network_loss, per_epoch + 1)
    with monkeypatch.context() as patch:
        patch.setattr(cls, "_network_loss", interrupt)
        with pytest.raises(KeyboardInterrupt):
            model.fit(X)
    assert len(model.history_["loss"]) == 1
    assert len(model.history_["n_clusters"]) == 2  # after pretraining and iteration 1
    assert len(model.history_["pretrain_loss"]) == model.pretrain_epochs
    labels = model.predict(X)
    np.testing.assert_array_equal(labels, model.labels_)
    assert labels.max() < model.n_clusters_
    # Adam's state is that of the kept iteration, not of the interrupted one.
    assert _adam_steps(model) == (model.pretrain_epochs + 1) * per_epoch

    model.set_params(warm_start=True, n_iter=2)
    model.fit(X)
    assert len(model.history_["loss"]) == 3
    assert len(model.history_["n_clusters"]) == 4
    assert len(model.history_["pretrain_loss"]) == model.pretrain_epochs
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    # The warm start went on with Adam's moments instead of a fresh optimiser.
    assert _adam_steps(model) == (model.pretrain_epochs + 3) * per_epoch


def _adam_steps(model):
    """The optimisation steps Adam's saved state has counted, for the weights
    that every loss trains (DeepDPGMM's pretraining leaves the variance head out)."""
    return max(int(param["step"]) for param in model._optimizer_state["state"].values())


@estimators
def test_interrupt_during_e_step_is_never_half_written(estimator, monkeypatch):
    X, _ = blobs()
    model = clone(estimator)
    cls = type(model)
    # The first E-step follows pretraining; interrupt the second one, which
    # refits the mixture after the first network step.
    monkeypatch.setattr(cls, "_fit_e_step_mixture", _interrupt_after(cls._fit_e_step_mixture, 2))
    with pytest.raises(KeyboardInterrupt):
        model.fit(X)
    assert model.history_["loss"] == []
    assert len(model.history_["n_clusters"]) == 1
    np.testing.assert_array_equal(model.predict(X), model.labels_)


# ------------------------------------------------------------------ large input
@estimators
def test_predict_and_transform_on_a_million_rows(estimator):
    if estimator.get_params().get("image_shape") is not None:
        pytest.skip("the batching is shared; the MLP instance keeps this test fast")
    X, _ = blobs()
    model = _fitted(estimator)
    rng = np.random.RandomState(0)
    X_big = X[rng.randint(len(X), size=1_000_000)] + 0.01 * rng.standard_normal((1_000_000, 4))
    head, tail = slice(0, 2 * INFERENCE_BATCH_SIZE), slice(244 * INFERENCE_BATCH_SIZE, None)

    tracemalloc.start()
    try:
        labels = model.predict(X_big)
        _, peak_predict = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        Z = model.transform(X_big)
        _, peak_transform = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Batched: the peak holds the outputs (and their pieces), never a copy of X.
    assert peak_predict < 2 * labels.nbytes + X_big.nbytes / 4
    assert peak_transform < 2 * Z.nbytes + labels.nbytes + X_big.nbytes / 4

    assert labels.shape == (1_000_000,)
    assert Z.shape == (1_000_000, estimator.latent_dim)
    for rows in (head, tail):
        np.testing.assert_array_equal(labels[rows], model.predict(X_big[rows]))
        np.testing.assert_array_equal(Z[rows], model.transform(X_big[rows]))


# --------------------------------------------------------------------- verbose
@estimators
def test_verbose_reports_every_epoch(estimator, capsys):
    X, _ = blobs()
    model = clone(estimator).set_params(verbose=1).fit(X)
    lines = capsys.readouterr().out.splitlines()
    name = type(estimator).__name__
    loss, seconds = r"loss (-?\d+\.\d{4})", r", \d+\.\d{2}s"
    patterns = [
        rf"\[{name}\] pretrain {i + 1}/{model.pretrain_epochs}: {loss}{seconds}"
        for i in range(model.pretrain_epochs)
    ] + [
        rf"\[{name}\] EM {i + 1}/{model.n_iter}: {loss}, clusters (\d+){seconds}"
        for i in range(model.n_iter)
    ]
    assert len(lines) == len(patterns)
    matches = [re.fullmatch(pattern, line) for pattern, line in zip(patterns, lines, strict=True)]
    assert all(matches), lines
    # The numbers printed are those of the history.
    history = model.history_
    printed = [float(match.group(1)) for match in matches]
    np.testing.assert_allclose(printed, history["pretrain_loss"] + history["loss"], atol=5e-5)
    clusters = [int(match.group(2)) for match in matches[model.pretrain_epochs :]]
    assert clusters == history["n_clusters"][1:]
    # verbose adds its printer for the fit only, not to the parameters.
    assert model.callbacks is None
    clone(estimator).fit(X)
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------ E-step subsample
@estimators
def test_e_step_on_a_subsample(estimator, monkeypatch):
    X, y = blobs(n_samples=90)
    fitted_sizes = []
    cls = type(estimator)
    fit_e_step_mixture = cls._fit_e_step_mixture

    def recording_fit(self, mixture, Z, max_iter, rows=None):
        fitted_sizes.append(len(Z) if rows is None else len(rows))
        return fit_e_step_mixture(self, mixture, Z, max_iter, rows)

    monkeypatch.setattr(cls, "_fit_e_step_mixture", recording_fit)
    model = clone(estimator).set_params(e_step_max_samples=40).fit(X)
    assert fitted_sizes == [40] * (model.n_iter + 1)
    # Every sample still gets a label, from the mixture fitted on the subsets.
    assert model.labels_.shape == (90,)
    np.testing.assert_array_equal(model.predict(X), model.labels_)

    fitted_sizes.clear()
    clone(estimator).set_params(e_step_max_samples=1000).fit(X)
    assert set(fitted_sizes) == {90}


@estimators
def test_e_step_subsample_smaller_than_the_mixture_is_rejected(estimator):
    X, _ = blobs()
    n_components = estimator._mixture_params()["n_components"]
    model = clone(estimator).set_params(e_step_max_samples=n_components - 1)
    with pytest.raises(ValueError, match="e_step_max_samples=.* should be >= the number"):
        model.fit(X)


# ------------------------------------------------------------ latent diagnostics
@estimators
def test_history_records_the_shape_of_the_latent_space(estimator):
    X, _ = blobs()
    model = clone(estimator).fit(X)
    dims = model.history_["latent_effective_dim"]
    assert len(dims) == len(model.history_["n_clusters"]) == len(model.history_["latent_scale"])
    assert all(1 - 1e-6 <= dim <= model.latent_dim + 1e-6 for dim in dims)
    assert dims[-1] == pytest.approx(effective_dimension(model.transform(X)), rel=1e-3)
