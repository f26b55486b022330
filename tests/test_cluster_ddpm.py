"""ClusterDDPM as an estimator: sampling, its backbones and their parameters,
scaling, its automatic settings and its EM safeguards.

The diffusion maths is tested in ``test_diffusion.py``, the losses in
``test_losses.py``, the scores in ``test_score.py`` and what every estimator
shares in ``test_common.py``.
"""

import pickle
import warnings

import numpy as np
import pytest
from _estimators import blobs, small
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import adjusted_rand_score

from skdiffclust import ClusterDDPM
from skdiffclust._base import TrainingDivergedError
from skdiffclust.nn import NetworkSpec


def _copy(model):
    """An independent copy of a fitted model (the shared fixture must not change)."""
    return pickle.loads(pickle.dumps(model))


def _count_denoiser_calls(monkeypatch, model):
    """A list that gets one entry per forward pass of ``model.denoiser_``."""
    calls = []
    forward = model.denoiser_.forward

    def counting(*args):
        calls.append(None)
        return forward(*args)

    monkeypatch.setattr(model.denoiser_, "forward", counting)
    return calls


# ------------------------------------------------------------------- sampling
def test_sample_shapes_and_grouped_labels(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    X_new, y = model.sample(25)
    assert X_new.shape == (25, X.shape[1])
    assert y.shape == (25,)
    assert np.all(np.diff(y) >= 0), "labels are grouped by cluster"
    assert y.min() >= 0 and y.max() < model.n_clusters_
    assert np.all(np.isfinite(X_new))
    # Like GaussianMixture.sample, a fixed random_state gives the same draw.
    np.testing.assert_array_equal(model.sample(25)[0], X_new)


def test_sample_one_cluster_ddim_and_guidance(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    for cluster in range(model.n_clusters_):
        X_new, y = model.sample(6, cluster=cluster, n_steps=4)
        assert X_new.shape == (6, X.shape[1])
        np.testing.assert_array_equal(y, cluster)
    plain, _ = model.sample(6, cluster=0, n_steps=4)
    guided, _ = model.sample(6, cluster=0, n_steps=4, guidance=2.0)
    assert np.all(np.isfinite(guided))
    assert not np.allclose(plain, guided)
    ancestral, _ = model.sample(6, cluster=0)
    assert not np.allclose(plain, ancestral)


def test_sampler_defaults_follow_n_steps(fitted_cluster_ddpm):
    model, _ = fitted_cluster_ddpm
    T = model.n_timesteps_
    default, y = model.sample(6)
    # None is the ancestral sampler over all T steps, which may be asked for by name.
    for kwargs in ({"sampler": "ancestral"}, {"sampler": "ancestral", "n_steps": T}):
        X_new, y_new = model.sample(6, **kwargs)
        np.testing.assert_array_equal(X_new, default)
        np.testing.assert_array_equal(y_new, y)
    # With n_steps, None is DDIM.
    np.testing.assert_array_equal(
        model.sample(6, n_steps=4)[0], model.sample(6, n_steps=4, sampler="ddim")[0]
    )


def test_ddim_without_n_steps_runs_all_timesteps(fitted_cluster_ddpm, monkeypatch):
    model, _ = fitted_cluster_ddpm
    T = model.n_timesteps_
    calls = _count_denoiser_calls(monkeypatch, model)
    X_all, _ = model.sample(6, sampler="ddim")
    assert len(calls) == T
    np.testing.assert_array_equal(X_all, model.sample(6, sampler="ddim", n_steps=T)[0])
    calls.clear()
    model.sample(6, sampler="ddim", n_steps=4)
    assert len(calls) == 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 0}, "n_samples must be a positive integer"),
        ({"n_samples": 2.5}, "n_samples must be a positive integer"),
        ({"cluster": 99}, r"cluster must be an integer in \[0, "),
        ({"cluster": -1}, r"cluster must be an integer in \[0, "),
        ({"guidance": -1.0}, "guidance must be a finite non-negative number"),
        ({"guidance": float("inf")}, "guidance must be a finite non-negative number"),
        ({"guidance": float("nan")}, "guidance must be a finite non-negative number"),
        ({"n_steps": 0}, "n_steps must be None or a positive integer"),
        ({"sampler": "euler"}, r"sampler must be one of \['ancestral', 'ddim'\] or None"),
        (
            {"sampler": "ancestral", "n_steps": 5},
            "the ancestral sampler visits all 10 timesteps; n_steps=5 needs sampler='ddim'",
        ),
    ],
)
def test_sample_bad_arguments(fitted_cluster_ddpm, kwargs, match):
    model, _ = fitted_cluster_ddpm
    with pytest.raises(ValueError, match=match):
        model.sample(**kwargs)


def test_sample_before_fit():
    with pytest.raises(NotFittedError):
        small(ClusterDDPM).sample(2)


def test_sample_in_units_of_the_data():
    X, _ = blobs()
    X = X * 10 + 100
    model = small(ClusterDDPM).fit(X)
    X_new, _ = model.sample(50, n_steps=5)
    low, high = X.min(), X.max()
    span = high - low
    assert low - span < X_new.mean() < high + span


# ------------------------------------------------------------- fitted state
def test_network_roles_and_fitted_spec(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    assert ClusterDDPM._network_roles == {"encoder": "encoder", "denoiser": "denoiser"}
    assert ClusterDDPM()._network_names == model._network_names == ("encoder", "denoiser")
    assert model.network_spec_ == NetworkSpec(
        n_features=X.shape[1], latent_dim=2, hidden_dims=(16,), image_shape=None, conv_width=32
    )
    assert model.n_timesteps_ == 10


def test_inference_reads_the_fitted_sizes_not_the_parameters(fitted_cluster_ddpm, monkeypatch):
    model, X = fitted_cluster_ddpm
    changed = _copy(model).set_params(n_timesteps=3, latent_dim=5)
    assert len(changed.get_feature_names_out()) == 2
    assert changed.transform(X).shape == (len(X), 2)
    np.testing.assert_array_equal(changed.score_samples(X), model.score_samples(X))
    calls = _count_denoiser_calls(monkeypatch, changed)
    np.testing.assert_array_equal(changed.sample(4)[0], model.sample(4)[0])
    assert len(calls) == model.n_timesteps_


# ------------------------------------------------------------------ backbones
def _digit_images(n_samples, upscale=1):
    digits = load_digits()
    images = digits.images[:n_samples] / 16.0
    if upscale > 1:
        images = np.kron(images, np.ones((upscale, upscale)))
    return images, digits.target[:n_samples]


@pytest.mark.parametrize(
    "image_shape, pad",
    [((1, 8, 8), 0), ((1, 28, 28), 2), ((3, 5, 7), None)],
    ids=["digits-8x8", "28x28", "rgb-5x7"],
)
def test_unet_backbone_fits_and_predicts(image_shape, pad):
    if pad is None:
        rng = np.random.RandomState(0)
        X = rng.uniform(size=(40, int(np.prod(image_shape))))
    elif image_shape[1] == 8:
        X = _digit_images(60)[0].reshape(60, -1)
    else:
        images = np.pad(_digit_images(40, upscale=3)[0], ((0, 0), (pad, pad), (pad, pad)))
        X = images.reshape(40, -1)
    model = small(
        ClusterDDPM, image_shape=image_shape, conv_width=8, pretrain_epochs=1, n_iter=1
    ).fit(X)
    labels = model.predict(X)
    np.testing.assert_array_equal(labels, model.labels_)
    assert labels.min() >= 0 and labels.max() < model.n_clusters_
    assert model.transform(X).shape == (len(X), 2)
    X_new, y = model.sample(3, n_steps=2)
    assert X_new.shape == (3, X.shape[1]) and np.all(np.isfinite(X_new))
    assert model.network_spec_.image_shape == image_shape


@pytest.mark.parametrize("params", [{"conv_width": 12}, {"unet_width": 12}])
def test_conv_width_must_be_a_multiple_of_8(params):
    X = _digit_images(20)[0].reshape(20, -1)
    model = small(ClusterDDPM, n_clusters=2, image_shape=(1, 8, 8), **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with pytest.raises(ValueError, match="conv_width must be a multiple of 8, got 12"):
            model.fit(X)


def test_unet_width_is_deprecated_for_conv_width():
    X = _digit_images(40)[0].reshape(40, -1)
    params = dict(image_shape=(1, 8, 8), pretrain_epochs=1, n_iter=1)
    with pytest.warns(FutureWarning, match="unet_width was renamed conv_width") as record:
        old = small(ClusterDDPM, unet_width=8, **params).fit(X)
    # The warning points at the caller's fit.
    assert [w.filename for w in record if w.category is FutureWarning] == [__file__]
    assert old.network_spec_.conv_width == 8
    assert old.denoiser_.init_conv.conv1[0].out_channels == 8
    assert old.encoder_.conv[0].out_channels == 8
    # The same model as with the new name, which does not warn.
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        new = small(ClusterDDPM, conv_width=8, **params).fit(X)
    np.testing.assert_array_equal(old.transform(X), new.transform(X))
    np.testing.assert_array_equal(old.labels_, new.labels_)


# -------------------------------------------------------------------- scaling
@pytest.mark.parametrize("random_state", [0, 1])
def test_unscaled_data_is_clustered(random_state):
    # Blobs around 100, as in scikit-learn's check_fit_idempotent.
    X, y = blobs(n_samples=90, random_state=random_state)
    X = X + 100
    labels = small(ClusterDDPM, random_state=random_state).fit_predict(X)
    assert adjusted_rand_score(y, labels) > 0.8


def test_scaling_round_trips_through_sample_units(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    Xs = model._scale(X)
    np.testing.assert_allclose(model._unscale(Xs), X, rtol=1e-5, atol=1e-5 * np.abs(X).max())


# ------------------------------------------------------------------ kl_weight
def test_kl_weight_auto_scales_with_the_data_dimension(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    assert model._effective_kl_weight() == pytest.approx(0.1 * X.shape[1] / 784)
    digits = _digit_images(30)[0].reshape(30, -1)
    on_digits = small(ClusterDDPM, pretrain_epochs=1, n_iter=0).fit(digits)
    assert on_digits._effective_kl_weight() == pytest.approx(0.1 * 64 / 784)
    on_digits.set_params(kl_weight=0.5)
    assert on_digits._effective_kl_weight() == 0.5


def test_timestep_skew_auto_grows_with_the_data_dimension(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    # Few features: never below uniform sampling.
    assert X.shape[1] < 64 / 9
    assert model._effective_timestep_skew() == 1.0
    digits = _digit_images(30)[0].reshape(30, -1)
    one_epoch = small(ClusterDDPM, pretrain_epochs=1, n_iter=0)
    on_digits = clone(one_epoch).fit(digits)
    assert on_digits._effective_timestep_skew() == pytest.approx(3.0)
    on_mnist_sized = clone(one_epoch).fit(np.tile(digits, (1, 49))[:, :784])
    assert on_mnist_sized._effective_timestep_skew() == pytest.approx(10.5)
    on_digits.set_params(timestep_skew=2.0)
    assert on_digits._effective_timestep_skew() == 2.0


# ------------------------------------------------------- EM safeguards
def test_latent_collapse_stops_em_with_a_warning(monkeypatch):
    X, _ = blobs()
    model = small(ClusterDDPM, n_iter=5)
    # The spread relative to pretraining after each EM iteration: a collapse.
    scales = iter([1.0, 0.5, 0.2, 0.1, 0.05])
    monkeypatch.setattr(
        ClusterDDPM,
        "_latent_collapsed",
        lambda self, latent_scale: next(scales) < self._collapse_ratio,
    )
    with pytest.warns(
        ConvergenceWarning, match="collapsed during EM iteration 3 .* after 2 EM.*Lower kl_weight"
    ) as record:
        model.fit(X)
    assert [w.filename for w in record if w.category is ConvergenceWarning] == [__file__]
    # Iterations 1 and 2 keep at least 25% of the spread; iteration 3 stops the
    # fit, and the estimator is left as after iteration 2.
    assert len(model.history_["loss"]) == 2
    assert len(model.history_["latent_scale"]) == 3
    assert model.labels_.shape == (X.shape[0],)


def test_latent_scale_is_recorded_and_stable_without_collapse(fitted_cluster_ddpm):
    model, _ = fitted_cluster_ddpm
    scales = model.history_["latent_scale"]
    assert len(scales) == model.n_iter + 1
    assert all(np.isfinite(scales)) and min(scales) > model._collapse_ratio * scales[0]


def test_divergence_names_the_learning_rate_of_its_stage():
    X, _ = blobs()
    with pytest.raises(TrainingDivergedError, match=r"Lower learning_rate \(now 1000000.0\)"):
        small(ClusterDDPM, learning_rate=1e6).fit(X)
    with pytest.raises(TrainingDivergedError, match=r"Lower em_learning_rate \(now 1e\+30\)"):
        small(ClusterDDPM, em_learning_rate=1e30).fit(X)


# ----------------------------------------------------------- the UMAP start
def _record_argument(monkeypatch, module, name, position):
    """Wrap ``module.name`` so that each call's positional argument ``position``
    is copied to the returned list."""
    seen = []
    original = getattr(module, name)

    def recording(*args):
        seen.append(np.array(args[position]))
        return original(*args)

    monkeypatch.setattr(module, name, recording)
    return seen


@pytest.mark.parametrize("init_params", ["umap", "umap-input"])
def test_umap_start_clusters_reproducibly(init_params):
    pytest.importorskip("umap")
    X, y = blobs(n_samples=90)
    first = small(ClusterDDPM, init_params=init_params, random_state=0).fit(X)
    second = small(ClusterDDPM, init_params=init_params, random_state=0).fit(X)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    assert adjusted_rand_score(y, first.labels_) > 0.8


@pytest.mark.parametrize("init_params", ["umap", "umap-input"])
def test_umap_started_e_steps_refit_to_the_first_partition(monkeypatch, init_params):
    pytest.importorskip("umap")
    from skdiffclust import cluster_ddpm

    X, _ = blobs(n_samples=90)
    seen = _record_argument(monkeypatch, cluster_ddpm, "refit_from_partition", 2)
    model = small(ClusterDDPM, init_params=init_params, n_iter=3, random_state=0).fit(X)
    assert len(seen) == 4  # every E-step, the first (UMAP's partition) included
    for labels in seen[1:]:
        np.testing.assert_array_equal(labels, seen[0])
    assert not hasattr(model, "_umap_partition")  # it belongs to one fit
    # A warm-started fit keeps the fitted mixture's partition of its data.
    seen.clear()
    model.set_params(warm_start=True, n_iter=1).fit(X)
    np.testing.assert_array_equal(seen[0], model.mixture_.predict(model.transform(X)))
    # On a subsample, each E-step refits on its rows' share of the partition.
    seen.clear()
    small(ClusterDDPM, init_params=init_params, n_iter=2, e_step_max_samples=40).fit(X)
    assert [len(labels) for labels in seen] == [40, 40, 40]


@pytest.mark.parametrize("init_params", ["umap", "umap-input", "ward"])
def test_network_steps_take_q_c_from_the_kept_partition(monkeypatch, init_params):
    if init_params != "ward":
        pytest.importorskip("umap")
    from skdiffclust import cluster_ddpm

    X, _ = blobs(n_samples=90)
    partitions = _record_argument(monkeypatch, cluster_ddpm, "refit_from_partition", 2)
    components = []
    original_kl = cluster_ddpm.mixture_kl

    def recording_kl(z, mean, log_var, mixture, components_=None):
        components.append(None if components_ is None else components_.numpy().copy())
        return original_kl(z, mean, log_var, mixture, components_)

    monkeypatch.setattr(cluster_ddpm, "mixture_kl", recording_kl)
    epochs = []
    original_batches = ClusterDDPM._minibatches

    def recording_batches(self, n_samples, device):
        batches = original_batches(self, n_samples, device)
        epochs.append([batch.numpy().copy() for batch in batches])
        return batches

    monkeypatch.setattr(ClusterDDPM, "_minibatches", recording_batches)
    model = small(ClusterDDPM, init_params=init_params, n_iter=2, random_state=0).fit(X)
    rows = [batch for epoch in epochs[model.pretrain_epochs_ :] for batch in epoch]
    assert len(components) == len(rows) > 0  # one KL term per network step
    if init_params == "ward":
        # No kept partition: q(c|x) is the code mixture's posterior.
        assert all(c is None for c in components)
        return
    # q(c|x) is the one-hot of each row's component in UMAP's kept partition.
    for batch, batch_components in zip(rows, components, strict=True):
        np.testing.assert_array_equal(batch_components, partitions[0][batch])


@pytest.mark.parametrize("init_params", ["umap", "umap-input"])
def test_umap_start_embeds_the_codes_or_the_scaled_input(monkeypatch, init_params):
    pytest.importorskip("umap")
    from skdiffclust import cluster_ddpm

    X, _ = blobs(n_samples=90)
    embedded = _record_argument(monkeypatch, cluster_ddpm, "umap_labels", 0)
    model = small(ClusterDDPM, init_params=init_params, n_iter=1, random_state=0).fit(X)
    assert len(embedded) == 1  # the first E-step only
    if init_params == "umap":
        assert embedded[0].shape == (len(X), model.latent_dim)
    else:
        np.testing.assert_allclose(embedded[0], model._scale(X), rtol=1e-6)
    assert not hasattr(model, "_start_inputs")  # dropped after the first E-step
    # The mixture's own fresh fits start from the codes.
    assert model.mixture_.init_params == "umap"


@pytest.mark.parametrize("init_params", ["umap", "umap-input"])
def test_umap_start_without_umap_fails_before_training(monkeypatch, init_params):
    monkeypatch.setitem(__import__("sys").modules, "umap", None)
    model = small(ClusterDDPM, init_params=init_params)
    with pytest.raises(ImportError, match="pip install umap-learn, or pass init_params='ward'"):
        model.fit(blobs()[0])
    assert not hasattr(model, "encoder_")


def test_umap_start_needs_the_number_of_clusters():
    from sklearn.utils._param_validation import InvalidParameterError

    from skdiffclust import DeepDPGMMClusterer

    with pytest.raises(InvalidParameterError, match="init_params"):
        small(DeepDPGMMClusterer, init_params="umap").fit(blobs()[0])
    with pytest.raises(InvalidParameterError, match="init_params"):
        small(DeepDPGMMClusterer, init_params="umap-input").fit(blobs()[0])
