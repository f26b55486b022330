"""Batched random image augmentation in torch.

Random affine transforms (shifts, rotations, scalings and shears) of images
held flattened, as the estimators hold them: ``x`` of shape
``(n_samples, C * H * W)``. Training a deep clusterer's network on randomly
transformed images while clustering clean ones is the largest single lever
reported for image clustering (Guo, Zhu, Liu and Yin, "Deep Embedded Clustering
with Data Augmentation", ACML 2018, PMLR 95:550-565).

The warping itself is :func:`torch.nn.functional.affine_grid` followed by
:func:`torch.nn.functional.grid_sample` (bilinear, zero padding), so it runs
on the device of the data. Every random number is drawn from a
:class:`torch.Generator` given by the caller, never from torch's global random
state: a seeded generator reproduces an augmentation exactly.

Geometry conventions, shared by all functions here: coordinates are in pixels
relative to the image centre, ``x`` to the right (columns) and ``y`` down
(rows). A transform maps each input point ``p`` to ``A p + t`` with
``A = R(rotation) @ Shear(shear) @ scale``:

- ``translation = (dx, dy)`` moves the content ``dx`` pixels right and ``dy``
  pixels down;
- ``rotation`` (degrees) turns the content counter-clockwise as the image is
  displayed (rows down), like :func:`torch.rot90` with ``k=1``;
- ``scale > 1`` enlarges the content about the centre;
- ``shear`` (degrees) slants the content horizontally: a point ``y`` pixels
  below the centre moves ``tan(shear) * y`` pixels to the right.
"""

import math
from numbers import Real

import torch
from torch.nn import functional as F

__all__ = [
    "AUGMENTATION_PRESETS",
    "NoAugmentation",
    "RandomAffine",
    "TrainingAugmentation",
    "affine_transform",
    "make_augmentation",
    "random_affine",
    "sample_affine_parameters",
]

#: Parameters of :class:`RandomAffine` for each preset name of
#: :func:`make_augmentation`. Shifts are fractions of the image's width and
#: height (0.1 is 2.8 pixels on 28x28 images, 0.8 on 8x8 ones); rotations and
#: shears are in degrees; ``max_scale`` is the largest relative change of size.
AUGMENTATION_PRESETS = {
    # Small shifts, rotations, scalings and shears: handwriting-like variation.
    "affine": {"max_shift": 0.1, "max_rotation": 10.0, "max_scale": 0.1, "max_shear": 10.0},
    # Guo et al. (2018)'s augmentation: shifts of 10% and rotations of 10 degrees.
    "shift_rotate": {"max_shift": 0.1, "max_rotation": 10.0, "max_scale": 0.0, "max_shear": 0.0},
}


def check_image_shape(image_shape):
    """Validate ``image_shape`` and return it as a tuple ``(C, H, W)`` of ints.

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)``: channels, height and width of the images, all positive.

    Returns
    -------
    image_shape : tuple of int
        The same shape as a tuple of Python ints.
    """
    if image_shape is None:
        raise ValueError(
            "Image augmentation needs image_shape=(C, H, W) to know how to unflatten "
            "the samples; got image_shape=None."
        )
    try:
        values = tuple(image_shape)
    except TypeError:
        values = None
    if (
        values is None
        or len(values) != 3
        or not all(isinstance(v, Real) and float(v).is_integer() and v > 0 for v in values)
    ):
        raise ValueError(f"image_shape must be 3 positive integers (C, H, W), got {image_shape!r}.")
    return tuple(int(v) for v in values)


def _check_batch(x, image_shape):
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(
            "x must be a 2-D tensor of flattened images (n_samples, C * H * W), "
            f"got {type(x).__name__} of shape {tuple(getattr(x, 'shape', ()))}."
        )
    if not x.is_floating_point():
        raise ValueError(f"x must have a floating-point dtype, got {x.dtype}.")
    C, H, W = image_shape
    if x.shape[1] != C * H * W:
        raise ValueError(
            f"x has {x.shape[1]} features but image_shape={image_shape} has {C * H * W}."
        )


def _per_sample(value, n, default, name, device):
    """``value`` as a float64 tensor of shape (n,) (or (n, 2) for translations)."""
    if value is None:
        value = default
    value = torch.as_tensor(value, dtype=torch.float64, device=device)
    shape = (n, 2) if name == "translation" else (n,)
    try:
        return torch.broadcast_to(value, shape)
    except RuntimeError:
        raise ValueError(
            f"{name} must be a scalar or have shape {shape}, got shape {tuple(value.shape)}."
        ) from None


def affine_transform(x, image_shape, *, translation=None, rotation=None, scale=None, shear=None):
    """Apply given affine transforms to a batch of flattened images.

    The deterministic core of :func:`random_affine`; the conventions are in the
    module docstring. Each parameter is a scalar (the same transform for every
    image) or one value per image; ``None`` means no such component.

    Parameters
    ----------
    x : torch.Tensor of shape (n_samples, C * H * W)
        Flattened images, floating point, on any device.
    image_shape : tuple of int
        ``(C, H, W)`` of the images.
    translation : array-like of shape (2,) or (n_samples, 2), default=None
        ``(dx, dy)`` in pixels: content moves ``dx`` right and ``dy`` down.
    rotation : float or array-like of shape (n_samples,), default=None
        Counter-clockwise rotation about the image centre, in degrees.
    scale : float or array-like of shape (n_samples,), default=None
        Size factor about the image centre; must be positive.
    shear : float or array-like of shape (n_samples,), default=None
        Horizontal shear angle in degrees, in (-90, 90).

    Returns
    -------
    x_transformed : torch.Tensor of shape (n_samples, C * H * W)
        The transformed images, on ``x``'s device and with its dtype. Content
        that leaves the frame is lost; what enters it is zero.
    """
    image_shape = check_image_shape(image_shape)
    _check_batch(x, image_shape)
    C, H, W = image_shape
    n = x.shape[0]
    if n == 0:
        return x.clone()
    device = x.device
    # The matrices are built in float64 so that float32 and float64 images
    # get the same transform (up to the final rounding).
    t = _per_sample(translation, n, 0.0, "translation", device)
    angle = torch.deg2rad(_per_sample(rotation, n, 0.0, "rotation", device))
    s = _per_sample(scale, n, 1.0, "scale", device)
    k = torch.tan(torch.deg2rad(_per_sample(shear, n, 0.0, "shear", device)))
    if not bool(torch.all(s > 0)):
        raise ValueError("scale must be positive.")
    cos, sin = torch.cos(angle), torch.sin(angle)
    # grid_sample pulls: each output pixel q reads the input at A^-1 (q - t),
    # with A^-1 = scale^-1 Shear(-shear) R(-rotation) in closed form.
    rows = [torch.stack([cos - k * sin, -sin - k * cos], dim=-1), torch.stack([sin, cos], dim=-1)]
    inv = torch.stack(rows, dim=-2) / s[:, None, None]
    # With align_corners=False, normalised coordinates are pixel offsets from
    # the centre times 2 / size; convert A^-1 and t to them.
    to_norm = torch.tensor([2.0 / W, 2.0 / H], dtype=torch.float64, device=device)
    linear = to_norm[:, None] * inv / to_norm[None, :]
    offset = -(to_norm * (inv @ t[:, :, None])[:, :, 0])
    theta = torch.cat([linear, offset[:, :, None]], dim=-1).to(x.dtype)
    images = x.reshape(n, C, H, W)
    grid = F.affine_grid(theta, [n, C, H, W], align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(n, C * H * W)


def _check_range(value, name, upper=None):
    if not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}.")
    if upper is not None and value >= upper:
        raise ValueError(f"{name} must be less than {upper}, got {value!r}.")


def _check_ranges(max_shift, max_rotation, max_scale, max_shear, strength):
    _check_range(max_shift, "max_shift", upper=1)
    _check_range(max_rotation, "max_rotation")
    _check_range(max_scale, "max_scale")
    _check_range(max_shear, "max_shear")
    _check_range(strength, "strength")
    if strength * max_scale >= 1:
        raise ValueError(
            "strength * max_scale must be less than 1 (scale factors stay positive), "
            f"got {strength} * {max_scale}."
        )
    if strength * max_shear >= 90:
        raise ValueError(
            f"strength * max_shear must be less than 90 degrees, got {strength} * {max_shear}."
        )


def _check_generator(generator):
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            "generator must be a torch.Generator (seeded by the caller, so that the "
            f"augmentation is reproducible), got {type(generator).__name__}."
        )


def sample_affine_parameters(
    n_samples,
    image_shape,
    generator,
    *,
    max_shift,
    max_rotation,
    max_scale,
    max_shear,
    strength=1.0,
):
    """Draw the parameters of ``n_samples`` random affine transforms.

    Each component is uniform on a symmetric range whose half-width is the
    corresponding ``max_*`` times ``strength``. The draws are one
    ``torch.rand((n_samples, 5), dtype=torch.float64)`` call on the
    generator's device, columns in the order horizontal shift, vertical shift,
    rotation, scale, shear, so they do not depend on the images' dtype.

    Parameters
    ----------
    n_samples : int
        Number of transforms.
    image_shape : tuple of int
        ``(C, H, W)`` of the images; shifts are fractions of ``W`` and ``H``.
    generator : torch.Generator
        Source of all the random numbers.
    max_shift, max_rotation, max_scale, max_shear : float
        See :class:`RandomAffine`.
    strength : float, default=1.0
        Factor on all four ranges.

    Returns
    -------
    params : dict
        ``translation`` (float64 tensor of shape (n_samples, 2), pixels),
        ``rotation``, ``scale`` and ``shear`` (shape (n_samples,), degrees and
        factors), on the generator's device: keyword arguments of
        :func:`affine_transform`.
    """
    C, H, W = check_image_shape(image_shape)
    _check_generator(generator)
    u = torch.rand(
        (n_samples, 5), generator=generator, dtype=torch.float64, device=generator.device
    )
    u = 2 * u - 1
    half_size = torch.tensor([W, H], dtype=torch.float64, device=generator.device)
    return {
        "translation": u[:, :2] * (strength * max_shift) * half_size,
        "rotation": u[:, 2] * (strength * max_rotation),
        "scale": 1 + u[:, 3] * (strength * max_scale),
        "shear": u[:, 4] * (strength * max_shear),
    }


def random_affine(
    x,
    image_shape,
    generator,
    *,
    max_shift,
    max_rotation,
    max_scale,
    max_shear,
    strength=1.0,
):
    """Randomly shift, rotate, scale and shear each image of a batch.

    Each image gets its own transform, drawn by
    :func:`sample_affine_parameters` and applied by :func:`affine_transform`.

    Parameters
    ----------
    x : torch.Tensor of shape (n_samples, C * H * W)
        Flattened images, floating point (float32 or float64), on any device.
        Values outside the frame are taken as zero, which suits images whose
        background is 0 (such as digits scaled to [0, 1]).
    image_shape : tuple of int
        ``(C, H, W)`` of the images.
    generator : torch.Generator
        Source of every random number, on ``x``'s device or on the CPU (the
        parameters, five numbers per image, are then moved to ``x``'s device).
        A generator with the same seed gives the same output; torch's global
        random state is neither used nor changed.
    max_shift : float
        Largest shift, as a fraction of the image width (horizontally) and
        height (vertically), in [0, 1).
    max_rotation : float
        Largest rotation in degrees, either way.
    max_scale : float
        Largest relative change of size, in [0, 1): the scale factor is
        uniform on ``[1 - max_scale, 1 + max_scale]``.
    max_shear : float
        Largest horizontal shear angle in degrees, either way, in [0, 90).
    strength : float, default=1.0
        Factor on all four ranges, e.g. to ramp augmentation up during
        training. At 0 the input is returned as is (no warping, which would
        not be bit-exact, and no random numbers drawn).

    Returns
    -------
    x_augmented : torch.Tensor of shape (n_samples, C * H * W)
        The transformed images, on ``x``'s device and with its dtype; ``x``
        itself when nothing is to be done.
    """
    image_shape = check_image_shape(image_shape)
    _check_batch(x, image_shape)
    _check_ranges(max_shift, max_rotation, max_scale, max_shear, strength)
    if strength == 0 or x.shape[0] == 0:
        return x
    params = sample_affine_parameters(
        x.shape[0],
        image_shape,
        generator,
        max_shift=max_shift,
        max_rotation=max_rotation,
        max_scale=max_scale,
        max_shear=max_shear,
        strength=strength,
    )
    params = {name: value.to(x.device) for name, value in params.items()}
    return affine_transform(x, image_shape, **params)


class RandomAffine:
    """Random affine augmentation of flattened images, as a picklable callable.

    ``augment(x, generator)`` returns :func:`random_affine` of ``x`` with the
    ranges given here. Build one with :func:`make_augmentation` from a preset
    name, or directly.

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` of the images.
    max_shift : float, default=0.1
        Largest shift as a fraction of the width and height, in [0, 1). 0.1
        is 2.8 pixels on 28x28 digits; raise it for objects that wander more
        in the frame, lower it for tightly cropped ones.
    max_rotation : float, default=10.0
        Largest rotation in degrees. Keep it well below 90 for data in which
        orientation matters (a 6 turned upside down is a 9).
    max_scale : float, default=0.1
        Largest relative change of size, in [0, 1).
    max_shear : float, default=10.0
        Largest horizontal shear angle in degrees, in [0, 90); a shear mimics
        the slant of handwriting.
    strength : float, default=1.0
        Factor on all four ranges; 0 turns the augmentation off exactly.

    Attributes
    ----------
    is_identity : bool
        True when the augmentation returns its input unchanged, so callers
        can skip the work that only augmented data needs.

    Examples
    --------
    >>> import torch
    >>> from skdiffclust.augmentation import RandomAffine
    >>> augment = RandomAffine((1, 8, 8), max_rotation=15)
    >>> x = torch.rand(4, 64)
    >>> augment(x, torch.Generator().manual_seed(0)).shape
    torch.Size([4, 64])
    """

    def __init__(
        self,
        image_shape,
        *,
        max_shift=0.1,
        max_rotation=10.0,
        max_scale=0.1,
        max_shear=10.0,
        strength=1.0,
    ):
        self.image_shape = check_image_shape(image_shape)
        _check_ranges(max_shift, max_rotation, max_scale, max_shear, strength)
        self.max_shift = max_shift
        self.max_rotation = max_rotation
        self.max_scale = max_scale
        self.max_shear = max_shear
        self.strength = strength

    @property
    def is_identity(self):
        return self.strength == 0 or not any(
            (self.max_shift, self.max_rotation, self.max_scale, self.max_shear)
        )

    def __call__(self, x, generator):
        """Augment the flattened images ``x`` with random numbers from ``generator``."""
        if self.is_identity:
            _check_batch(x, self.image_shape)
            return x
        return random_affine(
            x,
            self.image_shape,
            generator,
            max_shift=self.max_shift,
            max_rotation=self.max_rotation,
            max_scale=self.max_scale,
            max_shear=self.max_shear,
            strength=self.strength,
        )

    def __repr__(self):
        return (
            f"RandomAffine(image_shape={self.image_shape}, max_shift={self.max_shift}, "
            f"max_rotation={self.max_rotation}, max_scale={self.max_scale}, "
            f"max_shear={self.max_shear}, strength={self.strength})"
        )


class NoAugmentation:
    """The identity augmentation: ``augment(x, generator)`` returns ``x``.

    It draws no random numbers, so a training loop behaves the same with it as
    without any augmentation step.
    """

    is_identity = True

    def __call__(self, x, generator):
        return x

    def __repr__(self):
        return "NoAugmentation()"


def make_augmentation(name, image_shape=None, *, strength=1.0, **params):
    """Build the augmentation an estimator calls as ``augment(x, generator)``.

    Parameters
    ----------
    name : str or None
        A key of :data:`AUGMENTATION_PRESETS`: ``"affine"`` (shifts up to 10% of
        the size, rotations up to 10 degrees, scalings by 0.9-1.1 and shears up
        to 10 degrees) or ``"shift_rotate"`` (the shifts and rotations of Guo et
        al., 2018, without scaling or shear). ``None`` means no augmentation.
    image_shape : tuple of int, default=None
        ``(C, H, W)`` of the images; required unless ``name`` is None.
    strength : float, default=1.0
        Factor on all the preset's ranges; 0 turns augmentation off exactly.
    **params : dict
        Overrides of the preset's ``max_shift``, ``max_rotation``,
        ``max_scale`` or ``max_shear``.

    Returns
    -------
    augment : RandomAffine or NoAugmentation
        A picklable callable ``augment(x, generator)`` with an ``is_identity``
        attribute.

    Examples
    --------
    >>> import torch
    >>> from skdiffclust.augmentation import make_augmentation
    >>> augment = make_augmentation("affine", (1, 28, 28))
    >>> x = torch.rand(2, 784)
    >>> augment(x, torch.Generator().manual_seed(0)).shape
    torch.Size([2, 784])
    >>> make_augmentation(None)(x, None) is x
    True
    """
    if name is None:
        if params:
            raise ValueError(
                f"Augmentation parameters {sorted(params)} were given without a preset name."
            )
        return NoAugmentation()
    if not isinstance(name, str) or name not in AUGMENTATION_PRESETS:
        raise ValueError(
            f"Unknown augmentation {name!r}; valid ones are None and "
            f"{', '.join(repr(k) for k in AUGMENTATION_PRESETS)}."
        )
    if image_shape is None:
        raise ValueError(
            f"augmentation={name!r} needs image_shape=(C, H, W): augmentations "
            "transform images, and flattened samples do not say their shape."
        )
    unknown = set(params) - set(AUGMENTATION_PRESETS[name])
    if unknown:
        raise TypeError(
            f"Unknown augmentation parameters {sorted(unknown)}; valid ones are "
            f"{sorted(AUGMENTATION_PRESETS[name])}."
        )
    return RandomAffine(image_shape, strength=strength, **{**AUGMENTATION_PRESETS[name], **params})


class TrainingAugmentation:
    """The augmentation of one fit: a transform and the generator it draws from.

    ``view(x)`` returns ``augment(x, generator)``, or ``x`` itself when the
    transform is the identity (then no random number is drawn). The
    :class:`torch.Generator` (on the CPU, so that a fit is reproduced on any
    device) is created at the first call, seeded by a number drawn from
    torch's random state: an estimator calls it inside its training loop,
    where that state is seeded locally from ``random_state``, so the fit is
    reproducible and the caller's random state is left alone.

    Parameters
    ----------
    augment : callable
        ``augment(x, generator)`` with an ``is_identity`` attribute, as
        returned by :func:`make_augmentation`.
    """

    def __init__(self, augment):
        self.augment = augment
        self.generator = None

    @classmethod
    def from_preset(cls, name, image_shape, strength=1.0):
        """The training augmentation of an estimator's ``augmentation`` and
        ``augmentation_strength`` (see :func:`make_augmentation`)."""
        return cls(make_augmentation(name, image_shape, strength=strength))

    @property
    def is_identity(self):
        return self.augment.is_identity

    def view(self, x):
        """A randomly transformed copy of the batch ``x`` (flattened images)."""
        if self.augment.is_identity:
            return x
        if self.generator is None:
            seed = int(torch.randint(2**62, (), dtype=torch.int64))
            self.generator = torch.Generator().manual_seed(seed)
        return self.augment(x, self.generator)

    def __repr__(self):
        return f"TrainingAugmentation({self.augment!r})"
