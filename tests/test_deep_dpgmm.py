"""DeepDPGMMClusterer as an estimator: the clusters it finds, its prior, its
options, sampling, its backbones and the standardisation of its codes.

Its divergences and spread penalty are tested in ``test_losses.py``; the
generic scikit-learn checks, pickling, pipelines and RNG isolation are in
``test_common.py``.
"""

import math

import numpy as np
import pytest
import torch
from _estimators import small
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from skdiffclust import DeepDPGMMClusterer
from skdiffclust._mixture import TorchMixture
from skdiffclust.losses import latent_spread_penalty
from skdiffclust.nn import GaussianEncoder, MLPDecoder, StandardizedGaussianEncoder


@pytest.mark.parametrize(
    "covariance_type, init_params, cluster_scale",
    # The defaults, Ward with the method's diagonal covariances, and the
    # previous defaults.
    [("full", "ward", "auto"), ("diag", "ward", 1.7), ("diag", "random", 1.0)],
)
def test_finds_the_number_of_well_separated_blobs(covariance_type, init_params, cluster_scale):
    X, y = make_blobs(
        n_samples=400,
        centers=4,
        n_features=10,
        cluster_std=1.0,
        center_box=(-20, 20),
        random_state=0,
    )
    model = DeepDPGMMClusterer(
        n_components=20,
        latent_dim=4,
        hidden_dims=(64,),
        pretrain_epochs=30,
        n_iter=10,
        covariance_type=covariance_type,
        init_params=init_params,
        cluster_scale=cluster_scale,
        device="cpu",
        random_state=0,
    ).fit(X)
    assert model.mixture_.covariance_type == covariance_type
    assert model.n_clusters_ == 4
    assert adjusted_rand_score(y, model.labels_) > 0.95
    history = model.n_clusters_history_
    assert len(history) == model.n_iter + 1 and history[-1] == model.n_clusters_


def test_covariance_prior_follows_cluster_scale():
    for covariance_type, expected in [("diag", np.full(3, 12.0)), ("full", 12.0 * np.eye(3))]:
        model = DeepDPGMMClusterer(latent_dim=3, cluster_scale=2.0, covariance_type=covariance_type)
        params = model._mixture_params()
        assert params["covariance_type"] == covariance_type
        np.testing.assert_array_equal(params["covariance_prior"], expected)


@pytest.mark.parametrize("n_features, expected", [(2, 2), (7, 7), (30, 10)])
def test_default_latent_dim_never_exceeds_the_input(n_features, expected):
    X, _ = make_blobs(n_samples=60, centers=3, n_features=n_features, random_state=0)
    model = DeepDPGMMClusterer(
        n_components=4, hidden_dims=(16,), pretrain_epochs=1, n_iter=0, random_state=0
    )
    assert model.latent_dim is None
    model.fit(X)
    assert model.network_spec_.latent_dim == expected
    assert model.transform(X).shape == (60, expected)
    # The mixture's prior has the size of the codes.
    assert model.mixture_.covariance_prior.shape == (expected, expected)
    assert model.mixture_.degrees_of_freedom_prior == expected
    # An explicit size is kept, even above the input's.
    model.set_params(latent_dim=12).fit(X)
    assert model.network_spec_.latent_dim == 12


@pytest.mark.parametrize("divergence", ["ajs", "kl"])
@pytest.mark.parametrize("assignment", ["hard", "soft"])
def test_divergence_and_assignment_options_run(divergence, assignment):
    X, _ = make_blobs(n_samples=90, centers=3, random_state=0)
    model = small(
        DeepDPGMMClusterer,
        n_components=6,
        divergence=divergence,
        assignment=assignment,
        alpha=0.3,
        pretrain_epochs=3,
        learning_rate=1e-3,
    ).fit(X)
    assert np.all(np.isfinite(model.history_["loss"]))
    proba = model.predict_proba(X)
    assert proba.shape == (90, model.n_clusters_)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(np.unique(model.labels_), np.arange(model.n_clusters_))


def test_sample_shapes_and_labels():
    X, _ = make_blobs(n_samples=90, centers=3, random_state=0)
    model = small(DeepDPGMMClusterer, n_components=6, pretrain_epochs=3, learning_rate=1e-3)
    model.fit(X)
    X_new, y_new = model.sample(25)
    assert X_new.shape == (25, 2) and y_new.shape == (25,)
    assert set(y_new) <= set(range(model.n_clusters_))
    assert np.all(np.diff(y_new) >= 0)  # grouped by cluster, as GaussianMixture.sample
    X_one, y_one = model.sample(5, cluster=model.n_clusters_ - 1)
    assert X_one.shape == (5, 2)
    np.testing.assert_array_equal(y_one, model.n_clusters_ - 1)
    with pytest.raises(ValueError, match="cluster must be"):
        model.sample(2, cluster=model.n_clusters_)


def test_conv_backbone_runs():
    rng = np.random.RandomState(0)
    X = rng.rand(40, 64)
    model = small(
        DeepDPGMMClusterer,
        n_components=4,
        image_shape=(1, 8, 8),
        conv_width=4,
        pretrain_epochs=3,
        learning_rate=1e-3,
    ).fit(X)
    assert model.sample(3)[0].shape == (3, 64)
    assert model.network_spec_.conv_width == 4
    assert model.encoder_.encoder.conv[0].out_channels == model.decoder_.width == 4


def test_encoder_is_the_factorys_standardised():
    X, _ = make_blobs(n_samples=60, centers=3, random_state=0)
    model = small(DeepDPGMMClusterer, pretrain_epochs=1, n_iter=0).fit(X)
    assert DeepDPGMMClusterer._network_roles == {"encoder": "encoder", "decoder": "decoder"}
    assert model._network_names == ("encoder", "decoder")
    assert isinstance(model.encoder_, StandardizedGaussianEncoder)
    assert isinstance(model.encoder_.encoder, GaussianEncoder)
    assert isinstance(model.decoder_, MLPDecoder)
    assert model.network_spec_.hidden_dims == (16,)


# ------------------------------------------------------------ latent spread
def _one_epoch(**params):
    """A DeepDPGMMClusterer small enough to fit in about a second: one
    pretraining epoch, no EM, the default batch size and learning rate."""
    defaults = dict(n_components=8, pretrain_epochs=1, n_iter=0, batch_size=128, learning_rate=1e-3)
    return small(DeepDPGMMClusterer, **{**defaults, **params})


def test_spread_weight_adds_the_penalty_to_the_network_loss():
    X, _ = make_blobs(n_samples=120, centers=3, n_features=6, random_state=0)
    model = _one_epoch(n_components=5, latent_dim=3, pretrain_epochs=2, n_iter=0).fit(X)
    mixture = TorchMixture.from_sklearn(model.mixture_, "cpu")
    x = torch.as_tensor(model._scale(X[:32]))
    losses = {}
    for weight in (0.0, 2.0):
        model.set_params(spread_weight=weight)
        model.encoder_.train()
        with torch.random.fork_rng():  # the same sampled codes for both weights
            torch.manual_seed(0)
            losses[weight] = model._network_loss(x, mixture)
    model.encoder_.train()
    mean, _ = model._encode(x)
    expected = 2.0 * latent_spread_penalty(mean)
    # The two losses are float32 sums of terms far larger than the penalty, so
    # their difference carries their rounding (about 1e-5 on this data).
    torch.testing.assert_close(losses[2.0] - losses[0.0], expected, rtol=1e-5, atol=1e-4)


def test_e_step_sees_exactly_standardised_codes():
    X, _ = make_blobs(n_samples=300, centers=3, n_features=8, random_state=1)
    model = _one_epoch(n_components=8, latent_dim=4, hidden_dims=(32,), n_iter=2).fit(X)
    # The running statistics were set from the whole training set at the last
    # E-step (not left as running averages of the last epoch's batches).
    with torch.no_grad():
        raw = model.encoder_.encoder(torch.as_tensor(model._scale(X)))[0].double().numpy()
    encoder = model.encoder_
    np.testing.assert_allclose(encoder.running_mean.numpy(), raw.mean(axis=0), rtol=1e-5, atol=1e-7)
    assert encoder.running_var.item() == pytest.approx(np.mean(raw.var(axis=0)), rel=1e-5)
    Z = model.transform(X).astype(np.float64)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-4)
    # The E-step standardises its one pass of raw means exactly as the encoder does.
    Xs = torch.as_tensor(model._scale(X))
    np.testing.assert_array_equal(model._e_step_latents(Xs), model._encode_mean(Xs))


def test_auto_pretrain_epochs_run_at_least_the_minimum_of_steps(monkeypatch):
    from skdiffclust import deep_dpgmm
    from skdiffclust.deep_dpgmm import AUTO_PRETRAIN_EPOCHS, MIN_PRETRAIN_STEPS

    assert deep_dpgmm.auto_pretrain_epochs(1) == MIN_PRETRAIN_STEPS
    assert deep_dpgmm.auto_pretrain_epochs(3) == math.ceil(MIN_PRETRAIN_STEPS / 3)
    assert deep_dpgmm.auto_pretrain_epochs(1000) == AUTO_PRETRAIN_EPOCHS
    # The same rule on a scale the tests can afford.
    monkeypatch.setattr(deep_dpgmm, "AUTO_PRETRAIN_EPOCHS", 2)
    monkeypatch.setattr(deep_dpgmm, "MIN_PRETRAIN_STEPS", 12)
    X, _ = make_blobs(n_samples=70, centers=3, n_features=5, random_state=0)
    # 70 rows in batches of 32: 3 steps (the last of 6 rows), so 4 epochs.
    model = small(DeepDPGMMClusterer, pretrain_epochs="auto", n_iter=0).fit(X)
    assert model.pretrain_epochs_ == 4
    assert len(model.history_["pretrain_loss"]) == 4
    # 65 rows: the last batch of one row is dropped, 2 steps, so 6 epochs.
    model.fit(X[:65])
    assert model.pretrain_epochs_ == 6
    # Long epochs keep the base number; an integer is used as it is.
    model.set_params(batch_size=2).fit(X)
    assert model.pretrain_epochs_ == 2
    model.set_params(pretrain_epochs=3).fit(X[:65])
    assert model.pretrain_epochs_ == 3 == len(model.history_["pretrain_loss"])


def test_the_default_pretraining_is_auto():
    assert DeepDPGMMClusterer().pretrain_epochs == "auto"
    with pytest.raises(ValueError, match="pretrain_epochs"):
        DeepDPGMMClusterer(pretrain_epochs="long").fit(np.zeros((10, 2)))


def test_auto_cluster_scale_grows_with_the_rows_the_mixture_sees():
    from skdiffclust.deep_dpgmm import AUTO_SCALE, AUTO_SCALE_SAMPLES, auto_cluster_scale

    assert auto_cluster_scale(AUTO_SCALE_SAMPLES) == pytest.approx(AUTO_SCALE)
    assert auto_cluster_scale(16 * AUTO_SCALE_SAMPLES) == pytest.approx(2 * AUTO_SCALE)
    X, _ = make_blobs(n_samples=160, centers=3, n_features=5, random_state=0)
    # Without the split after the first E-step, which shrinks the scale.
    model = _one_epoch(split_valley=0).fit(X)
    assert model.cluster_scale_ == pytest.approx(AUTO_SCALE * (160 / AUTO_SCALE_SAMPLES) ** 0.25)
    expected_prior = model.latent_dim * model.cluster_scale_**2 * np.eye(2)
    np.testing.assert_allclose(model.mixture_.covariance_prior, expected_prior)
    # The E-step subsample is what the mixture sees.
    model = _one_epoch(e_step_max_samples=40, split_valley=0).fit(X)
    assert model.cluster_scale_ == pytest.approx(auto_cluster_scale(40))
    model = _one_epoch(cluster_scale=2.5, split_valley=0).fit(X)
    assert model.cluster_scale_ == 2.5
    with pytest.raises(ValueError, match="cluster_scale"):
        DeepDPGMMClusterer(cluster_scale="large").fit(X)
