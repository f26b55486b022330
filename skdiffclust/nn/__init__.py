"""Torch networks used by the estimators; no scikit-learn inside."""

from .mlp import GaussianEncoder, MLPDecoder, MLPDenoiser
from .unet import ConvDecoder, ConvGaussianEncoder, ConditionalUNet

__all__ = [
    "ConditionalUNet",
    "ConvDecoder",
    "ConvGaussianEncoder",
    "GaussianEncoder",
    "MLPDecoder",
    "MLPDenoiser",
]
