"""Convolutional encoder and decoder for images of any size ``(C, H, W)``.

Images arrive flattened in (C, H, W) order, as rows of ``X``. They are
zero-padded to a multiple of 4 so that two stride-2 levels divide evenly, and
outputs are cropped back.
"""

import math

from torch import nn

from .mlp import mlp


def padded_size(size):
    """The smallest multiple of 4 that is at least ``size``."""
    return 4 * math.ceil(size / 4)


def _pad(x):
    """Zero-pad images ``(..., H, W)`` on the bottom and right to multiples of 4."""
    H, W = x.shape[-2:]
    return nn.functional.pad(x, (0, padded_size(W) - W, 0, padded_size(H) - H))


class ConvGaussianEncoder(nn.Module):
    """q(z|x) for images: two strided conv levels, then mean and log-variance heads."""

    def __init__(self, image_shape, latent_dim, width=32, hidden_dim=256):
        super().__init__()
        channels, H, W = image_shape
        self.image_shape = tuple(image_shape)
        self.conv = nn.Sequential(
            nn.Conv2d(channels, width, 3, 2, 1),
            nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1),
            nn.GELU(),
            nn.Flatten(),
        )
        n_flat = 2 * width * (padded_size(H) // 4) * (padded_size(W) // 4)
        self.trunk = mlp([n_flat, hidden_dim], final_activation=True)
        self.mean = nn.Linear(hidden_dim, latent_dim)
        self.log_var = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x):
        C, H, W = self.image_shape
        h = self.trunk(self.conv(_pad(x.view(-1, C, H, W))))
        return self.mean(h), self.log_var(h)


class ConvDecoder(nn.Module):
    """Decoder ``z -> image`` mirroring :class:`ConvGaussianEncoder`, output flattened."""

    def __init__(self, latent_dim, image_shape, width=32, hidden_dim=256):
        super().__init__()
        channels, H, W = image_shape
        self.image_shape = tuple(image_shape)
        self.grid = (padded_size(H) // 4, padded_size(W) // 4)
        self.width = width
        self.fc = mlp(
            [latent_dim, hidden_dim, 2 * width * self.grid[0] * self.grid[1]], final_activation=True
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
            nn.GELU(),
            nn.ConvTranspose2d(width, channels, 4, 2, 1),
        )

    def forward(self, z):
        C, H, W = self.image_shape
        h = self.fc(z).view(-1, 2 * self.width, *self.grid)
        return self.deconv(h)[:, :, :H, :W].flatten(1)
