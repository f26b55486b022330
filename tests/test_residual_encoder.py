"""Tests of the authors' ClusterDDPM encoder (ResidualConvGaussianEncoder)."""

import pytest
import torch
from torch import nn

from skdiffclust.nn.residual_encoder import ResidualConvGaussianEncoder


def block_parameters(n_in, n_out):
    """Parameters of a ResidualConvBlock: two Conv3x3 (weights and biases), two BatchNorms."""
    return (9 * n_in * n_out + n_out) + (9 * n_out * n_out + n_out) + 2 * (2 * n_out)


def authors_parameters(channels, latent_dim, width):
    return (
        block_parameters(channels, width)
        + block_parameters(width, width)
        + block_parameters(width, 2 * width)
        + 2 * (2 * width * latent_dim + latent_dim)
    )


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (1, 8, 8), (3, 7, 9), (1, 3, 2)])
def test_output_shapes(image_shape):
    torch.manual_seed(0)
    C, H, W = image_shape
    encoder = ResidualConvGaussianEncoder(image_shape, latent_dim=5, width=8)
    x = torch.rand(4, C * H * W)
    mean, log_var = encoder(x)
    assert mean.shape == log_var.shape == (4, 5)
    assert torch.isfinite(mean).all() and torch.isfinite(log_var).all()
    encoder.eval()
    mean, log_var = encoder(x[:1])
    assert mean.shape == log_var.shape == (1, 5)


def test_float64():
    encoder = ResidualConvGaussianEncoder((1, 8, 8), 3, width=8).double()
    mean, log_var = encoder(torch.rand(2, 64, dtype=torch.float64))
    assert mean.dtype == log_var.dtype == torch.float64


def test_architecture_is_the_authors():
    # Yan, Liu and Zhang's MNIST encoder: n_feat=64, latent 32.
    encoder = ResidualConvGaussianEncoder((1, 28, 28), latent_dim=32, width=64)
    assert sum(p.numel() for p in encoder.parameters()) == authors_parameters(1, 32, 64) == 342144
    assert encoder.init_conv.residual
    assert encoder.init_conv.conv1[0].in_channels == 1
    assert encoder.init_conv.conv1[0].out_channels == 64
    assert not encoder.down1[0].residual and isinstance(encoder.down1[1], nn.MaxPool2d)
    assert encoder.down2[0].conv2[0].out_channels == 128
    assert isinstance(encoder.down2[1], nn.MaxPool2d)
    assert (encoder.mean.in_features, encoder.mean.out_features) == (128, 32)
    assert (encoder.log_var.in_features, encoder.log_var.out_features) == (128, 32)
    # The global pooling makes the parameter count independent of the image size.
    for image_shape in [(1, 8, 8), (1, 7, 9)]:
        other = ResidualConvGaussianEncoder(image_shape, latent_dim=32, width=64)
        assert sum(p.numel() for p in other.parameters()) == 342144
    three = ResidualConvGaussianEncoder((3, 7, 9), latent_dim=32, width=32)
    assert sum(p.numel() for p in three.parameters()) == authors_parameters(3, 32, 32)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    encoder = ResidualConvGaussianEncoder((3, 7, 9), latent_dim=4, width=8)
    x = torch.rand(6, 3 * 7 * 9, requires_grad=True)
    mean, log_var = encoder(x)
    (mean.square().sum() + log_var.exp().sum()).backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_eval_mode_encodes_each_image_independently():
    torch.manual_seed(0)
    encoder = ResidualConvGaussianEncoder((1, 8, 8), latent_dim=3, width=8)
    x = torch.rand(5, 64)
    encoder(x)  # one training step of the BatchNorm statistics
    encoder.eval()
    mean, log_var = encoder(x)
    alone_mean, alone_log_var = encoder(x[2:3])
    torch.testing.assert_close(alone_mean, mean[2:3])
    torch.testing.assert_close(alone_log_var, log_var[2:3])


def test_padding_does_not_leak_between_images():
    # Odd sizes are padded; the padding must be per image, not across the batch.
    torch.manual_seed(0)
    encoder = ResidualConvGaussianEncoder((1, 7, 9), latent_dim=2, width=4).eval()
    x = torch.rand(3, 63)
    mean, _ = encoder(x)
    x[1] = 0
    changed, _ = encoder(x)
    torch.testing.assert_close(changed[[0, 2]], mean[[0, 2]])
