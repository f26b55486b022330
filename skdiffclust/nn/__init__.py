"""Torch networks used by the estimators; no scikit-learn inside."""

from .mlp import GaussianEncoder, MLPDecoder, MLPDenoiser, StandardizedGaussianEncoder
from .unet import ConditionalUNet, ConvDecoder, ConvGaussianEncoder

__all__ = [
    "ConditionalUNet",
    "ConvDecoder",
    "ConvGaussianEncoder",
    "GaussianEncoder",
    "MLPDecoder",
    "MLPDenoiser",
    "StandardizedGaussianEncoder",
]
