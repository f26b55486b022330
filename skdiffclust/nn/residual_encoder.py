"""The convolutional encoder q(z|x) of ClusterDDPM's authors.

Yan, Liu and Zhang, "ClusterDDPM: An EM clustering framework with Denoising
Diffusion Probabilistic Models" (arXiv 2312.08029): the encoder is the
contracting half of their conditional U-Net, global average pooling, and two
linear heads.
"""

from torch import nn

from .unet import ResidualConvBlock, _pad


class ResidualConvGaussianEncoder(nn.Module):
    """q(z|x) = N(mean(x), diag exp(log_var(x))) with residual conv blocks.

    A residual block ``channels -> width`` at full resolution, two levels of
    (block, 2x2 max pooling) to ``width`` then ``2 * width`` channels at a
    quarter of the resolution, global average pooling and GELU to a
    ``2 * width`` vector, and one linear head each for the mean and the
    log-variance. Blocks are Conv3x3-BatchNorm-GELU twice, as in the U-Net
    denoiser. Images are zero-padded to a multiple of 4 so that both pooling
    levels divide evenly; the global pooling makes the network work for any
    image size.

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` of the (unpadded) images.
    latent_dim : int
        Size of the code ``z``.
    width : int, default=64
        Channels of the first level (the authors' ``n_feat``, 64 on MNIST);
        the cost grows with its square. 32 is about four times cheaper.
    """

    def __init__(self, image_shape, latent_dim, width=64):
        super().__init__()
        channels, _, _ = image_shape
        self.image_shape = tuple(image_shape)
        self.init_conv = ResidualConvBlock(channels, width, residual=True)
        self.down1 = nn.Sequential(ResidualConvBlock(width, width), nn.MaxPool2d(2))
        self.down2 = nn.Sequential(ResidualConvBlock(width, 2 * width), nn.MaxPool2d(2))
        self.to_vec = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.GELU(), nn.Flatten())
        self.mean = nn.Linear(2 * width, latent_dim)
        self.log_var = nn.Linear(2 * width, latent_dim)

    def forward(self, x):
        """Return ``(mean, log_var)``, each of shape (n_samples, latent_dim), of
        the flattened images ``x`` of shape (n_samples, C * H * W)."""
        C, H, W = self.image_shape
        h = self.init_conv(_pad(x.view(-1, C, H, W)))
        h = self.to_vec(self.down2(self.down1(h)))
        return self.mean(h), self.log_var(h)
