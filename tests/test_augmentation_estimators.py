"""Tests of the estimators' ``augmentation``, ``encoder`` and ``denoiser`` parameters."""

import pickle

import numpy as np
import pytest
import torch

import skdiffclust.augmentation
from skdiffclust import ClusterDDPM, DeepDPGMMClusterer
from skdiffclust.nn import (
    ConvGaussianEncoder,
    MLPDenoiser,
    ResidualConvGaussianEncoder,
    build_network,
)
from skdiffclust.nn.backbones import NetworkSpec

SMALL = dict(
    latent_dim=2,
    hidden_dims=(16,),
    conv_width=8,
    pretrain_epochs=2,
    n_iter=1,
    batch_size=16,
    learning_rate=1e-2,
    device="cpu",
    random_state=0,
)


def make(cls, **params):
    if cls is ClusterDDPM:
        return ClusterDDPM(n_clusters=2, n_timesteps=10, **{**SMALL, **params})
    return DeepDPGMMClusterer(n_components=3, **{**SMALL, **params})


def images(image_shape, n=32, seed=0):
    """Two groups of images, a bright blob on the left or on the right half."""
    C, H, W = image_shape
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 0.2, size=(n, C, H, W))
    X[: n // 2, :, :, : max(1, W // 2)] += 0.8
    X[n // 2 :, :, :, W // 2 :] += 0.8
    return X.reshape(n, -1)


ESTIMATORS = [ClusterDDPM, DeepDPGMMClusterer]
X8 = images((1, 8, 8))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_augmentation_is_deterministic_and_changes_the_fit(cls):
    first = make(cls, image_shape=(1, 8, 8), augmentation="affine").fit(X8)
    second = make(cls, image_shape=(1, 8, 8), augmentation="affine").fit(X8)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    np.testing.assert_array_equal(first.transform(X8), second.transform(X8))
    plain = make(cls, image_shape=(1, 8, 8)).fit(X8)
    assert not np.array_equal(first.transform(X8), plain.transform(X8))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_strength_zero_is_no_augmentation_exactly(cls):
    off = make(cls, image_shape=(1, 8, 8), augmentation=None).fit(X8)
    zero = make(cls, image_shape=(1, 8, 8), augmentation="affine", augmentation_strength=0.0)
    zero.fit(X8)
    np.testing.assert_array_equal(off.labels_, zero.labels_)
    np.testing.assert_array_equal(off.transform(X8), zero.transform(X8))


def _raise(*args, **kwargs):
    raise AssertionError("inference must not augment")


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_inference_never_augments(cls, monkeypatch):
    model = make(cls, image_shape=(1, 8, 8), augmentation="shift_rotate").fit(X8)
    expected = model.transform(X8), model.predict(X8)
    monkeypatch.setattr(skdiffclust.augmentation, "random_affine", _raise)
    monkeypatch.setattr(skdiffclust.augmentation, "affine_transform", _raise)
    np.testing.assert_array_equal(model.transform(X8), expected[0])
    np.testing.assert_array_equal(model.predict(X8), expected[1])
    model.predict_proba(X8)
    model.sample(2)
    if cls is ClusterDDPM:
        model.score_samples(X8[:2])


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("image_shape", [(1, 7, 9), (3, 5, 6)])
def test_odd_sizes_and_channels(cls, image_shape):
    X = images(image_shape)
    model = make(cls, image_shape=image_shape, augmentation="affine").fit(X)
    assert model.labels_.shape == (len(X),)
    assert model.transform(X).shape == (len(X), 2)
    assert model.sample(3)[0].shape == (3, X.shape[1])


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_augmentation_needs_image_shape(cls):
    model = make(cls, augmentation="affine")
    with pytest.raises(ValueError, match="image_shape"):
        model.fit(X8)
    assert not hasattr(model, "encoder_")
    assert not hasattr(model, "n_features_in_")


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("param, value", [("augmentation", "rotate"), ("encoder", "resnet")])
def test_unknown_choices_raise(cls, param, value):
    with pytest.raises(ValueError, match=param):
        make(cls, image_shape=(1, 8, 8), **{param: value}).fit(X8)


def test_unknown_denoiser_raises():
    with pytest.raises(ValueError, match="denoiser"):
        make(ClusterDDPM, image_shape=(1, 8, 8), denoiser="transformer").fit(X8)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_global_torch_rng_untouched(cls):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    make(cls, image_shape=(1, 8, 8), augmentation="affine").fit(X8)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_warm_start_and_pickle_keep_working(cls):
    model = make(cls, image_shape=(1, 8, 8), augmentation="affine", warm_start=True).fit(X8)
    copy = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(copy.transform(X8), model.transform(X8))
    model.fit(X8)
    copy.fit(X8)
    assert len(model.history_["loss"]) == 2
    np.testing.assert_array_equal(copy.transform(X8), model.transform(X8))


# ------------------------------------------------------------------ backbones
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_encoder_and_denoiser_choices_are_recorded_and_built():
    model = make(ClusterDDPM, image_shape=(1, 8, 8), encoder="residual", denoiser="mlp").fit(X8)
    assert (model.network_spec_.encoder, model.network_spec_.denoiser) == ("residual", "mlp")
    assert isinstance(model.encoder_, ResidualConvGaussianEncoder)
    assert isinstance(model.denoiser_, MLPDenoiser)
    copy = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(copy.transform(X8), model.transform(X8))
    dp = make(DeepDPGMMClusterer, image_shape=(1, 8, 8), encoder="residual").fit(X8)
    assert isinstance(dp.encoder_.encoder, ResidualConvGaussianEncoder)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_backbone_choices_do_not_change_vector_data(cls):
    X = X8[:, :5]
    model = make(cls, encoder="residual").fit(X)
    assert model.network_spec_ == NetworkSpec(5, 2, (16,), conv_width=8)


def test_the_conv_encoder_is_the_default_image_encoder():
    spec = NetworkSpec(64, 2, (16,), image_shape=(1, 8, 8), conv_width=8)
    assert isinstance(build_network("encoder", spec), ConvGaussianEncoder)
    mlp = NetworkSpec(64, 2, (16,), image_shape=(1, 8, 8), conv_width=8, denoiser="mlp")
    net = build_network("denoiser", mlp)
    x, z, t = torch.rand(3, 64), torch.rand(3, 2), torch.rand(3, 1)
    assert net(x, z, t).shape == (3, 64)
