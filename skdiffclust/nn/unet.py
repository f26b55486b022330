"""The conditional U-Net noise predictor for images of any size ``(C, H, W)``.

:class:`ConditionalUNet` follows the authors' ``ContextUnet`` (two down and up
levels of Conv3x3-BatchNorm-GELU residual blocks; the latent code conditions
multiplicatively and the time additively). Inputs are zero-padded to a
multiple of 4 so that both pooling levels divide evenly, and cropped back.
"""

import torch
from torch import nn

from .conv import _pad, padded_size
from .mlp import Embed


class ResidualConvBlock(nn.Module):
    """Two Conv3x3-BatchNorm-GELU layers, optionally with a residual connection."""

    def __init__(self, n_in, n_out, residual=False):
        super().__init__()
        self.residual = residual
        self.same_channels = n_in == n_out
        self.conv1 = nn.Sequential(
            nn.Conv2d(n_in, n_out, 3, 1, 1), nn.BatchNorm2d(n_out), nn.GELU()
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(n_out, n_out, 3, 1, 1), nn.BatchNorm2d(n_out), nn.GELU()
        )

    def forward(self, x):
        h1 = self.conv1(x)
        h = self.conv2(h1)
        if not self.residual:
            return h
        # The authors' scaling keeps the residual sum at unit variance; with a
        # change of channels the skip is the first layer's output, computed once.
        return ((x if self.same_channels else h1) + h) / 1.414


class DownBlock(nn.Sequential):
    """A residual convolution block, then 2x2 max pooling."""

    def __init__(self, n_in, n_out):
        super().__init__(ResidualConvBlock(n_in, n_out), nn.MaxPool2d(2))


class UpBlock(nn.Module):
    """Transposed 2x2 convolution of the input and its skip connection, then two
    residual convolution blocks."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(n_in, n_out, 2, 2),
            ResidualConvBlock(n_out, n_out),
            ResidualConvBlock(n_out, n_out),
        )

    def forward(self, x, skip):
        return self.net(torch.cat((x, skip), dim=1))


class ConditionalUNet(nn.Module):
    """Conditional noise predictor eps(x_t, z, t/T) for images.

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` of the (unpadded) images.
    latent_dim : int
        Size of the conditioning code ``z``.
    width : int
        The authors' ``n_feat`` (64 in their code); must be a multiple of 4.
    """

    def __init__(self, image_shape, latent_dim, width=32):
        super().__init__()
        channels, H, W = image_shape
        self.image_shape = tuple(image_shape)
        bottleneck = (padded_size(H) // 4, padded_size(W) // 4)
        self.init_conv = ResidualConvBlock(channels, width, residual=True)
        self.down1 = DownBlock(width, width)
        self.down2 = DownBlock(width, 2 * width)
        self.to_vec = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.GELU())
        self.t_embed1 = Embed(1, 2 * width)
        self.t_embed2 = Embed(1, width)
        self.z_embed1 = Embed(latent_dim, 2 * width)
        self.z_embed2 = Embed(latent_dim, width)
        self.up0 = nn.Sequential(
            nn.ConvTranspose2d(2 * width, 2 * width, bottleneck, bottleneck),
            nn.GroupNorm(8, 2 * width),
            nn.ReLU(),
        )
        self.up1 = UpBlock(4 * width, width)
        self.up2 = UpBlock(2 * width, width)
        self.out = nn.Sequential(
            nn.Conv2d(2 * width, width, 3, 1, 1),
            nn.GroupNorm(8, width),
            nn.ReLU(),
            nn.Conv2d(width, channels, 3, 1, 1),
        )

    def forward(self, x, z, t):
        shape = x.shape
        C, H, W = self.image_shape
        x = _pad(x.view(-1, C, H, W))
        h0 = self.init_conv(x)
        d1 = self.down1(h0)
        d2 = self.down2(d1)
        u1 = self.up0(self.to_vec(d2))
        z1 = self.z_embed1(z)[:, :, None, None]
        t1 = self.t_embed1(t)[:, :, None, None]
        u2 = self.up1(z1 * u1 + t1, d2)
        z2 = self.z_embed2(z)[:, :, None, None]
        t2 = self.t_embed2(t)[:, :, None, None]
        u3 = self.up2(z2 * u2 + t2, d1)
        out = self.out(torch.cat((u3, h0), dim=1))
        return out[:, :, :H, :W].reshape(shape)
