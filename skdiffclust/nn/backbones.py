"""One factory for the networks of every estimator, keyed on the kind of input.

An estimator describes its networks by a :class:`NetworkSpec` (the sizes it
was fitted with) and asks :func:`build_network` for each role it needs:
``"encoder"`` (q(z|x) as ``(mean, log_var)``), ``"decoder"`` (``z -> x``) or
``"denoiser"`` (``eps(x_t, z, t/T)``). The input kind is ``"vector"`` for
rows of features and ``"image"`` when an image shape is given. A new backbone
is one entry of :data:`BACKBONES`; both estimators pick it up. Image inputs
have variants of the encoder (:data:`IMAGE_ENCODERS`, chosen by
``NetworkSpec.encoder``) and of the denoiser (:data:`IMAGE_DENOISERS`, chosen
by ``NetworkSpec.denoiser``).
"""

from dataclasses import asdict, dataclass

from .conv import ConvDecoder, ConvGaussianEncoder
from .mlp import GaussianEncoder, MLPDecoder, MLPDenoiser
from .residual_encoder import ResidualConvGaussianEncoder
from .unet import ConditionalUNet

#: Width of the dense layer between the convolutions and the latent code when
#: ``hidden_dims`` is empty.
DEFAULT_DENSE_WIDTH = 256


@dataclass(frozen=True)
class NetworkSpec:
    """Everything needed to rebuild an estimator's networks.

    Parameters
    ----------
    n_features : int
        Number of input features (``C * H * W`` for images).
    latent_dim : int
        Size of the latent code.
    hidden_dims : tuple of int
        Widths of the MLP layers; for images only the last one is used, as the
        width of the dense layer between the convolutions and the code.
    image_shape : tuple of 3 int or None
        ``(C, H, W)`` of image inputs, None for vectors.
    conv_width : int
        Channels of the first convolution level (images only).
    encoder : str
        The image encoder, a key of :data:`IMAGE_ENCODERS` (images only).
    denoiser : str
        The image denoiser, a key of :data:`IMAGE_DENOISERS` (images only).
    """

    n_features: int
    latent_dim: int
    hidden_dims: tuple
    image_shape: tuple | None = None
    conv_width: int = 32
    encoder: str = "conv"
    denoiser: str = "unet"

    @property
    def input_kind(self):
        """``"vector"`` or ``"image"``."""
        return "vector" if self.image_shape is None else "image"

    @property
    def dense_width(self):
        """Width of the dense layer of the convolutional encoder and decoder."""
        return self.hidden_dims[-1] if self.hidden_dims else DEFAULT_DENSE_WIDTH

    def to_dict(self):
        """Plain types only, so that the spec pickles with any version of this class."""
        return asdict(self)


#: ``NetworkSpec.encoder -> builder(spec)`` of the image encoders: ``"conv"``,
#: two strided convolutions and a dense layer; ``"residual"``, the authors'
#: ClusterDDPM encoder (residual blocks at full resolution, far slower).
IMAGE_ENCODERS = {
    "conv": lambda s: ConvGaussianEncoder(s.image_shape, s.latent_dim, s.conv_width, s.dense_width),
    "residual": lambda s: ResidualConvGaussianEncoder(s.image_shape, s.latent_dim, s.conv_width),
}

#: ``NetworkSpec.denoiser -> builder(spec)`` of the image denoisers: ``"unet"``,
#: the conditional U-Net; ``"mlp"``, the vector denoiser on the flattened image.
IMAGE_DENOISERS = {
    "unet": lambda s: ConditionalUNet(s.image_shape, s.latent_dim, s.conv_width),
    "mlp": lambda s: MLPDenoiser(s.n_features, s.hidden_dims, s.latent_dim),
}


def _variant(variants, name, field):
    try:
        return variants[name]
    except KeyError:
        raise ValueError(
            f"Unknown {field} {name!r} for image inputs; known: {sorted(variants)}."
        ) from None


def _image_encoder(spec):
    return _variant(IMAGE_ENCODERS, spec.encoder, "encoder")(spec)


def _image_decoder(spec):
    return ConvDecoder(spec.latent_dim, spec.image_shape, spec.conv_width, spec.dense_width)


def _image_denoiser(spec):
    return _variant(IMAGE_DENOISERS, spec.denoiser, "denoiser")(spec)


#: ``(input kind, role) -> builder(spec)``.
BACKBONES = {
    ("vector", "encoder"): lambda s: GaussianEncoder(s.n_features, s.hidden_dims, s.latent_dim),
    ("vector", "decoder"): lambda s: MLPDecoder(s.latent_dim, s.hidden_dims, s.n_features),
    ("vector", "denoiser"): lambda s: MLPDenoiser(s.n_features, s.hidden_dims, s.latent_dim),
    ("image", "encoder"): _image_encoder,
    ("image", "decoder"): _image_decoder,
    ("image", "denoiser"): _image_denoiser,
}


def build_network(role, spec):
    """Build the network of ``role`` for the input kind of ``spec``.

    Parameters
    ----------
    role : {"encoder", "decoder", "denoiser"}
    spec : NetworkSpec

    Returns
    -------
    torch.nn.Module
    """
    try:
        builder = BACKBONES[spec.input_kind, role]
    except KeyError:
        roles = sorted({r for kind, r in BACKBONES if kind == spec.input_kind})
        raise ValueError(
            f"No {role!r} backbone for {spec.input_kind} inputs; known roles: {roles}."
        ) from None
    return builder(spec)
