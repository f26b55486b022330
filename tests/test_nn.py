"""skdiffclust.nn: the backbone factory and the networks it builds."""

import dataclasses
import pickle

import pytest
import torch

from skdiffclust.nn import (
    BACKBONES,
    ConditionalUNet,
    ConvDecoder,
    ConvGaussianEncoder,
    DownBlock,
    GaussianEncoder,
    MLPDecoder,
    MLPDenoiser,
    NetworkSpec,
    ResidualConvBlock,
    StandardizedGaussianEncoder,
    UpBlock,
    build_network,
)
from skdiffclust.nn.backbones import DEFAULT_DENSE_WIDTH
from skdiffclust.nn.conv import padded_size

N_ROWS = 4  # batch normalisation needs more than one row in training
LATENT_DIM = 3

#: One small spec per input kind and image size: odd sizes, several channels,
#: and a 1-pixel-high image (padded to 4 x 8).
SPECS = {
    "vector": NetworkSpec(n_features=7, latent_dim=LATENT_DIM, hidden_dims=(16, 8)),
    "image-1x8x8": NetworkSpec(64, LATENT_DIM, (16,), image_shape=(1, 8, 8), conv_width=8),
    "image-3x7x9": NetworkSpec(189, LATENT_DIM, (16,), image_shape=(3, 7, 9), conv_width=8),
    "image-1x1x5": NetworkSpec(5, LATENT_DIM, (16,), image_shape=(1, 1, 5), conv_width=8),
}

BUILDS = [
    pytest.param(spec, role, id=f"{name}-{role}")
    for name, spec in SPECS.items()
    for kind, role in BACKBONES
    if kind == spec.input_kind
]


def _inputs(spec, role, generator):
    """The arguments of ``role``'s forward pass: rows of flattened features."""
    x = torch.randn(N_ROWS, spec.n_features, generator=generator)
    z = torch.randn(N_ROWS, spec.latent_dim, generator=generator)
    t = torch.rand(N_ROWS, 1, generator=generator)
    return {"encoder": (x,), "decoder": (z,), "denoiser": (x, z, t)}[role]


def _outputs(network, args):
    out = network(*args)
    return out if isinstance(out, tuple) else (out,)


def test_every_input_kind_has_every_role():
    assert set(BACKBONES) >= {
        (kind, role) for kind in ("vector", "image") for role in ("encoder", "decoder", "denoiser")
    }


@pytest.mark.parametrize("spec, role", BUILDS)
def test_every_backbone_builds_with_the_right_shapes_and_finite_gradients(spec, role):
    torch.manual_seed(0)
    network = build_network(role, spec)
    assert isinstance(network, torch.nn.Module)
    network.train()
    args = _inputs(spec, role, torch.Generator().manual_seed(1))
    outputs = _outputs(network, args)
    if role == "encoder":
        assert [o.shape for o in outputs] == [(N_ROWS, spec.latent_dim)] * 2
    else:
        assert [o.shape for o in outputs] == [(N_ROWS, spec.n_features)]
    sum(o.square().sum() for o in outputs).backward()
    for name, parameter in network.named_parameters():
        assert parameter.grad is not None, name
        assert torch.all(torch.isfinite(parameter.grad)), name
    # Evaluation mode (running statistics) gives finite outputs too.
    network.eval()
    with torch.no_grad():
        assert all(torch.all(torch.isfinite(o)) for o in _outputs(network, args))


@pytest.mark.parametrize(
    "role, expected",
    [
        ("encoder", {"vector": GaussianEncoder, "image": ConvGaussianEncoder}),
        ("decoder", {"vector": MLPDecoder, "image": ConvDecoder}),
        ("denoiser", {"vector": MLPDenoiser, "image": ConditionalUNet}),
    ],
)
def test_the_factory_picks_the_network_of_the_input_kind(role, expected):
    assert type(build_network(role, SPECS["vector"])) is expected["vector"]
    assert type(build_network(role, SPECS["image-1x8x8"])) is expected["image"]


def test_unknown_role_is_rejected():
    with pytest.raises(ValueError, match=r"No 'critic' backbone for vector inputs; known roles"):
        build_network("critic", SPECS["vector"])
    with pytest.raises(ValueError, match="for image inputs"):
        build_network("critic", SPECS["image-1x8x8"])


def test_conv_sizes_follow_the_spec():
    spec = NetworkSpec(64, 2, (32, 24), image_shape=(1, 8, 8), conv_width=16)
    encoder, decoder = build_network("encoder", spec), build_network("decoder", spec)
    denoiser = build_network("denoiser", spec)
    assert encoder.conv[0].out_channels == decoder.width == 16
    assert denoiser.init_conv.conv1[0].out_channels == 16
    # Only the last hidden width is used, as the dense layer of the image networks.
    assert encoder.mean.in_features == 24


# --------------------------------------------------------------- NetworkSpec
def test_network_spec_kind_dense_width_and_dict():
    vector = NetworkSpec(5, 2, (16, 8))
    assert vector.input_kind == "vector" and vector.dense_width == 8
    image = NetworkSpec(64, 2, (), image_shape=(1, 8, 8))
    assert image.input_kind == "image"
    assert image.dense_width == DEFAULT_DENSE_WIDTH == 256
    assert image.conv_width == 32
    as_dict = image.to_dict()
    expected = {
        "n_features": 64,
        "latent_dim": 2,
        "hidden_dims": (),
        "image_shape": (1, 8, 8),
        "conv_width": 32,
    }
    assert {key: as_dict[key] for key in expected} == expected
    # Plain types only, and enough to rebuild the spec.
    assert all(isinstance(v, int | str | tuple | type(None)) for v in as_dict.values())
    assert NetworkSpec(**as_dict) == image
    assert pickle.loads(pickle.dumps(image)) == image
    with pytest.raises(dataclasses.FrozenInstanceError):
        image.latent_dim = 3


def test_image_networks_with_empty_hidden_dims_use_the_default_dense_width():
    spec = NetworkSpec(64, 2, (), image_shape=(1, 8, 8), conv_width=8)
    assert build_network("encoder", spec).mean.in_features == DEFAULT_DENSE_WIDTH
    decoder = build_network("decoder", spec)
    assert decoder(torch.zeros(2, 2)).shape == (2, 64)


# --------------------------------------------------------- the conv networks
@pytest.mark.parametrize("size, expected", [(1, 4), (4, 4), (5, 8), (7, 8), (28, 28)])
def test_padded_size_is_the_next_multiple_of_4(size, expected):
    assert padded_size(size) == expected


@pytest.mark.parametrize("image_shape", [(1, 8, 8), (3, 7, 9), (1, 1, 5)])
def test_image_networks_accept_flattened_or_image_input(image_shape):
    spec = NetworkSpec(
        int(torch.tensor(image_shape).prod()), 2, (16,), image_shape=image_shape, conv_width=8
    )
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(N_ROWS, *image_shape, generator=gen)
    flat = images.flatten(1)
    z, t = torch.randn(N_ROWS, 2, generator=gen), torch.rand(N_ROWS, 1, generator=gen)
    encoder, denoiser = build_network("encoder", spec), build_network("denoiser", spec)
    for network in (encoder, denoiser):
        network.eval()
    with torch.no_grad():
        for from_flat, from_images in zip(encoder(flat), encoder(images), strict=True):
            torch.testing.assert_close(from_flat, from_images)
        eps_flat, eps_images = denoiser(flat, z, t), denoiser(images, z, t)
    # The U-Net returns the shape it was given.
    assert eps_flat.shape == flat.shape and eps_images.shape == images.shape
    torch.testing.assert_close(eps_flat, eps_images.flatten(1))
    # The decoder's output is flattened, in (C, H, W) order.
    assert build_network("decoder", spec)(z).shape == flat.shape


def test_unet_blocks_halve_and_double_the_resolution():
    x = torch.randn(2, 8, 8, 12)
    assert ResidualConvBlock(8, 16)(x).shape == (2, 16, 8, 12)
    residual = ResidualConvBlock(8, 8, residual=True)
    assert residual(x).shape == x.shape
    down = DownBlock(8, 16)(x)
    assert down.shape == (2, 16, 4, 6)
    assert UpBlock(32, 8)(down, down).shape == (2, 8, 8, 12)


# ------------------------------------------------- the standardised encoder
def test_standardized_encoder_centres_and_scales_the_means():
    torch.manual_seed(0)
    spec = SPECS["vector"]
    encoder = StandardizedGaussianEncoder(build_network("encoder", spec), spec.latent_dim)
    x = 3.0 * torch.randn(64, spec.n_features) + 1.0
    raw_mean, raw_log_var = encoder.encoder(x)
    encoder.train()
    mean, log_var = encoder(x)
    # Batch statistics: centred, one global scale of unit mean variance.
    torch.testing.assert_close(mean.mean(dim=0), torch.zeros(spec.latent_dim), atol=1e-5, rtol=0)
    assert mean.var(dim=0, unbiased=False).mean().item() == pytest.approx(1.0, rel=1e-3)
    scale = raw_mean.var(dim=0, unbiased=False).mean() + encoder.eps
    torch.testing.assert_close(log_var, raw_log_var - torch.log(scale))
    # The exact statistics of the data, used in evaluation.
    encoder.set_statistics(raw_mean.detach())
    encoder.eval()
    with torch.no_grad():
        eval_mean, _ = encoder(x)
        torch.testing.assert_close(eval_mean, encoder.standardize(raw_mean), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eval_mean.detach(), mean.detach(), rtol=1e-4, atol=1e-4)
