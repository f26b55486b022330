"""Torch networks used by the estimators; no scikit-learn inside.

:func:`build_network` is the one entry point the estimators use; the modules
hold one family of networks each: ``mlp`` (vectors), ``conv`` (image encoder
and decoder), ``residual_encoder`` (the authors' ClusterDDPM image encoder),
``unet`` (the image denoiser), ``standardized`` (the latent
standardisation of DeepDPGMMClusterer's encoder).
"""

from .backbones import BACKBONES, IMAGE_DENOISERS, IMAGE_ENCODERS, NetworkSpec, build_network
from .conv import ConvDecoder, ConvGaussianEncoder
from .mlp import GaussianEncoder, MLPDecoder, MLPDenoiser
from .residual_encoder import ResidualConvGaussianEncoder
from .standardized import StandardizedGaussianEncoder
from .unet import ConditionalUNet, DownBlock, ResidualConvBlock, UpBlock

__all__ = [
    "BACKBONES",
    "ConditionalUNet",
    "ConvDecoder",
    "ConvGaussianEncoder",
    "DownBlock",
    "GaussianEncoder",
    "IMAGE_DENOISERS",
    "IMAGE_ENCODERS",
    "MLPDecoder",
    "MLPDenoiser",
    "NetworkSpec",
    "ResidualConvBlock",
    "ResidualConvGaussianEncoder",
    "StandardizedGaussianEncoder",
    "UpBlock",
    "build_network",
]
