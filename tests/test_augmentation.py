"""Tests of the random image augmentation (skdiffclust.augmentation)."""

import math
import pickle

import pytest
import torch

from skdiffclust.augmentation import (
    AUGMENTATION_PRESETS,
    NoAugmentation,
    RandomAffine,
    affine_transform,
    make_augmentation,
    random_affine,
    sample_affine_parameters,
)

PRESETS = sorted(AUGMENTATION_PRESETS)


def generator(seed):
    return torch.Generator().manual_seed(seed)


def images(n, image_shape, dtype=torch.float32, seed=0):
    C, H, W = image_shape
    return torch.rand(n, C * H * W, generator=generator(seed), dtype=dtype)


def blob(image_shape, sigma):
    """A centred Gaussian blob, flattened, in every channel."""
    C, H, W = image_shape
    y = torch.arange(H, dtype=torch.float64) - (H - 1) / 2
    x = torch.arange(W, dtype=torch.float64) - (W - 1) / 2
    image = torch.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    return image.expand(C, H, W).reshape(1, -1)


@pytest.mark.parametrize("preset", PRESETS)
def test_same_seed_same_output_different_seed_different_output(preset):
    augment = make_augmentation(preset, (1, 28, 28))
    x = images(16, (1, 28, 28))
    first = augment(x, generator(0))
    assert torch.equal(first, augment(x, generator(0)))
    assert not torch.allclose(first, augment(x, generator(1)))
    assert not torch.allclose(first, x)


def test_each_image_gets_its_own_transform():
    x = images(1, (1, 28, 28)).repeat(8, 1)
    out = make_augmentation("affine", (1, 28, 28))(x, generator(0))
    distances = torch.cdist(out, out)
    assert (distances + torch.eye(8) > 1e-3).all()


def test_successive_calls_advance_the_generator():
    augment = make_augmentation("affine", (1, 8, 8))
    x = images(4, (1, 8, 8))
    g = generator(0)
    assert not torch.allclose(augment(x, g), augment(x, g))


def test_global_rng_untouched_and_unused():
    augment = make_augmentation("affine", (3, 7, 9))
    x = images(8, (3, 7, 9))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = augment(x, generator(0))
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(456)
    assert torch.equal(augment(x, generator(0)), first)


@pytest.mark.parametrize("preset", PRESETS)
def test_strength_zero_is_the_exact_identity(preset):
    augment = make_augmentation(preset, (1, 28, 28), strength=0)
    assert augment.is_identity
    x = images(8, (1, 28, 28))
    g = generator(0)
    state = g.get_state()
    out = augment(x, g)
    assert torch.equal(out, x)
    # No random numbers are drawn: a training loop is the same as without it.
    assert torch.equal(g.get_state(), state)
    kwargs = AUGMENTATION_PRESETS[preset]
    assert torch.equal(random_affine(x, (1, 28, 28), g, strength=0.0, **kwargs), x)


def test_none_is_the_identity():
    augment = make_augmentation(None)
    assert isinstance(augment, NoAugmentation) and augment.is_identity
    x = images(8, (1, 28, 28))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    assert augment(x, generator(0)) is x
    assert augment(x, None) is x
    assert torch.equal(torch.get_rng_state(), state)
    assert make_augmentation(None, (1, 28, 28)).is_identity


def test_presets_are_not_identities():
    for preset in PRESETS:
        assert not make_augmentation(preset, (1, 8, 8)).is_identity


def test_input_is_not_modified():
    x = images(8, (1, 8, 8))
    copy = x.clone()
    make_augmentation("affine", (1, 8, 8))(x, generator(0))
    assert torch.equal(x, copy)


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (1, 8, 8), (1, 7, 9), (3, 7, 9), (3, 5, 5)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_and_device_are_kept(image_shape, dtype):
    x = images(5, image_shape, dtype=dtype)
    out = make_augmentation("affine", image_shape)(x, generator(0))
    assert out.shape == x.shape
    assert out.dtype == dtype
    assert out.device == x.device
    assert torch.isfinite(out).all()


def test_float32_and_float64_get_the_same_transform():
    x = images(8, (3, 7, 9), dtype=torch.float64)
    augment = make_augmentation("affine", (3, 7, 9))
    out64 = augment(x, generator(0))
    out32 = augment(x.float(), generator(0))
    torch.testing.assert_close(out32.double(), out64, atol=1e-5, rtol=0)


def test_empty_batch():
    x = images(0, (1, 8, 8))
    assert make_augmentation("affine", (1, 8, 8))(x, generator(0)).shape == (0, 64)
    assert affine_transform(x, (1, 8, 8), rotation=10.0).shape == (0, 64)


def test_random_affine_applies_the_sampled_parameters():
    image_shape = (3, 7, 9)
    x = images(6, image_shape)
    kwargs = AUGMENTATION_PRESETS["affine"]
    params = sample_affine_parameters(6, image_shape, generator(3), **kwargs)
    expected = affine_transform(x, image_shape, **params)
    assert torch.equal(random_affine(x, image_shape, generator(3), **kwargs), expected)


def test_sampled_parameters_stay_in_their_ranges_and_scale_with_strength():
    C, H, W = image_shape = (1, 20, 10)
    kwargs = {"max_shift": 0.2, "max_rotation": 15.0, "max_scale": 0.1, "max_shear": 5.0}
    full = sample_affine_parameters(2000, image_shape, generator(0), **kwargs)
    assert full["translation"][:, 0].abs().max() <= 0.2 * W
    assert full["translation"][:, 1].abs().max() <= 0.2 * H
    # The ranges are used, not just bounded.
    assert full["translation"][:, 0].abs().max() > 0.19 * W
    assert full["rotation"].abs().max() <= 15 and full["rotation"].abs().max() > 14.5
    assert ((full["scale"] - 1).abs() <= 0.1).all()
    assert full["shear"].abs().max() <= 5
    half = sample_affine_parameters(2000, image_shape, generator(0), strength=0.5, **kwargs)
    torch.testing.assert_close(half["rotation"], full["rotation"] / 2)
    torch.testing.assert_close(half["translation"], full["translation"] / 2)
    torch.testing.assert_close(half["scale"] - 1, (full["scale"] - 1) / 2)


@pytest.mark.parametrize("dx, dy", [(1, 0), (0, 1), (-1, 0), (2, -1), (-3, 2)])
def test_whole_pixel_shift_moves_the_content(dx, dy):
    # Positive dx moves the content right (columns), positive dy down (rows).
    C, H, W = image_shape = (3, 9, 11)
    x = torch.zeros(2, C, H, W, dtype=torch.float64)
    x[:, :, 3:-3, 3:-3] = torch.rand(2, C, H - 6, W - 6, generator=generator(0), dtype=x.dtype)
    out = affine_transform(x.flatten(1), image_shape, translation=(dx, dy))
    expected = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    torch.testing.assert_close(out.view_as(x), expected, atol=1e-10, rtol=0)


def test_per_image_shifts():
    C, H, W = image_shape = (1, 8, 8)
    x = torch.zeros(2, C, H, W)
    x[:, :, 3:5, 3:5] = 1
    out = affine_transform(x.flatten(1), image_shape, translation=[[1, 0], [0, -2]])
    expected = torch.stack([torch.roll(x[0], 1, dims=-1), torch.roll(x[1], -2, dims=-2)])
    torch.testing.assert_close(out.view_as(x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("k", [1, -1, 2])
def test_rotation_by_multiples_of_90_degrees_matches_rot90(size, k):
    image_shape = (3, size, size)
    x = images(2, image_shape, dtype=torch.float64).view(2, *image_shape)
    out = affine_transform(x.flatten(1), image_shape, rotation=90.0 * k)
    torch.testing.assert_close(out.view_as(x), torch.rot90(x, k, dims=(-2, -1)), atol=1e-10, rtol=0)


def test_rotation_in_float32_matches_rot90():
    image_shape = (1, 28, 28)
    x = images(2, image_shape).view(2, *image_shape)
    out = affine_transform(x.flatten(1), image_shape, rotation=90.0)
    torch.testing.assert_close(out.view_as(x), torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_shear_slants_rows_by_their_distance_to_the_centre():
    # At 45 degrees, the row one pixel below the centre moves one pixel right,
    # the row above one pixel left, and the centre row stays.
    C, H, W = image_shape = (1, 7, 9)
    x = torch.zeros(1, C, H, W, dtype=torch.float64)
    x[..., 2:5, 3:6] = torch.rand(3, 3, generator=generator(0), dtype=x.dtype)
    out = affine_transform(x.flatten(1), image_shape, shear=45.0).view_as(x)
    for row, moved in [(2, -1), (3, 0), (4, 1)]:
        torch.testing.assert_close(
            out[..., row, :], torch.roll(x[..., row, :], moved, dims=-1), atol=1e-10, rtol=0
        )


def test_scale_enlarges_about_the_centre():
    C, H, W = image_shape = (1, 7, 7)
    x = images(1, image_shape, dtype=torch.float64).view(1, C, H, W)
    out = affine_transform(x.flatten(1), image_shape, scale=2.0).view_as(x)
    # The output pixel 2k from the centre shows the input pixel k from it.
    for k in (-1, 0, 1):
        torch.testing.assert_close(out[..., 3, 3 + 2 * k], x[..., 3, 3 + k], atol=1e-10, rtol=0)
        torch.testing.assert_close(out[..., 3 + 2 * k, 3], x[..., 3 + k, 3], atol=1e-10, rtol=0)


def test_transforms_compose_as_documented():
    # Rotating a horizontally sheared image by 90 degrees, in one transform.
    image_shape = (1, 9, 9)
    x = images(1, image_shape, dtype=torch.float64)
    sheared = affine_transform(x, image_shape, shear=20.0).view(1, 1, 9, 9)
    both = affine_transform(x, image_shape, shear=20.0, rotation=90.0).view(1, 1, 9, 9)
    torch.testing.assert_close(both, torch.rot90(sheared, 1, dims=(-2, -1)), atol=1e-10, rtol=0)


@pytest.mark.parametrize("preset", PRESETS)
def test_mass_of_a_centred_blob_is_kept(preset):
    image_shape = (1, 28, 28)
    x = blob(image_shape, sigma=3.0).repeat(64, 1)
    params = sample_affine_parameters(64, image_shape, generator(0), **AUGMENTATION_PRESETS[preset])
    out = affine_transform(x, image_shape, **params)
    ratio = out.sum(dim=1) / x.sum(dim=1)
    # Shifts, rotations and shears keep areas; a scaling s multiplies them by s^2.
    torch.testing.assert_close(ratio, params["scale"] ** 2, atol=0, rtol=0.02)
    assert ((ratio > 0.75) & (ratio < 1.3)).all()


def test_mass_kept_on_small_images():
    image_shape = (3, 8, 8)
    x = blob(image_shape, sigma=1.2).repeat(32, 1)
    out = make_augmentation("shift_rotate", image_shape)(x, generator(0))
    ratio = out.sum(dim=1) / x.sum(dim=1)
    assert ((ratio > 0.9) & (ratio < 1.1)).all()


def test_random_affine_augmentation_is_picklable():
    augment = make_augmentation("affine", (1, 8, 8), strength=0.5, max_rotation=20)
    restored = pickle.loads(pickle.dumps(augment))
    x = images(4, (1, 8, 8))
    assert torch.equal(restored(x, generator(0)), augment(x, generator(0)))
    assert "max_rotation=20" in repr(restored)
    assert isinstance(pickle.loads(pickle.dumps(make_augmentation(None))), NoAugmentation)


def test_make_augmentation_uses_the_preset_and_overrides():
    augment = make_augmentation("affine", [1, 8, 8], strength=0.5, max_shear=0)
    assert isinstance(augment, RandomAffine)
    assert augment.image_shape == (1, 8, 8)
    assert augment.strength == 0.5
    assert augment.max_shear == 0
    assert augment.max_rotation == AUGMENTATION_PRESETS["affine"]["max_rotation"]


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid ones are None and 'affine', 'shift_rotate'"):
        make_augmentation("flip", (1, 8, 8))
    with pytest.raises(ValueError, match="Unknown augmentation"):
        make_augmentation(3, (1, 8, 8))


def test_missing_image_shape_raises():
    with pytest.raises(ValueError, match="needs image_shape"):
        make_augmentation("affine")
    with pytest.raises(ValueError, match="image_shape"):
        random_affine(images(2, (1, 8, 8)), None, generator(0), **AUGMENTATION_PRESETS["affine"])


@pytest.mark.parametrize("image_shape", [(8, 8), (1, 0, 8), (1, 8.5, 8), "abc"])
def test_invalid_image_shape_raises(image_shape):
    with pytest.raises(ValueError, match="image_shape must be 3 positive integers"):
        make_augmentation("affine", image_shape)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"max_shift": -0.1}, "max_shift must be a non-negative"),
        ({"max_shift": 1.0}, "max_shift must be less than 1"),
        ({"max_rotation": float("nan")}, "max_rotation must be a non-negative"),
        ({"max_scale": 1.0}, "strength \\* max_scale must be less than 1"),
        ({"max_shear": 90.0}, "strength \\* max_shear must be less than 90"),
        ({"strength": -1.0}, "strength must be a non-negative"),
        ({"strength": 20.0}, "strength \\* max_scale"),
    ],
)
def test_invalid_ranges_raise(params, match):
    with pytest.raises(ValueError, match=match):
        make_augmentation("affine", (1, 8, 8), **params)
    kwargs = {**AUGMENTATION_PRESETS["affine"], **params}
    with pytest.raises(ValueError, match=match):
        random_affine(images(2, (1, 8, 8)), (1, 8, 8), generator(0), **kwargs)


def test_invalid_overrides_and_inputs_raise():
    with pytest.raises(TypeError, match="Unknown augmentation parameters"):
        make_augmentation("affine", (1, 8, 8), max_zoom=0.1)
    with pytest.raises(ValueError, match="without a preset name"):
        make_augmentation(None, max_shift=0.1)
    augment = make_augmentation("affine", (1, 8, 8))
    with pytest.raises(ValueError, match="63 features but image_shape"):
        augment(torch.zeros(2, 63), generator(0))
    with pytest.raises(ValueError, match="2-D tensor"):
        augment(torch.zeros(2, 1, 8, 8), generator(0))
    with pytest.raises(ValueError, match="floating-point"):
        augment(torch.zeros(2, 64, dtype=torch.int64), generator(0))
    with pytest.raises(TypeError, match="torch.Generator"):
        augment(torch.zeros(2, 64), 0)
    with pytest.raises(ValueError, match="scale must be positive"):
        affine_transform(torch.zeros(2, 64), (1, 8, 8), scale=0.0)
    with pytest.raises(ValueError, match="rotation must be a scalar or have shape"):
        affine_transform(torch.zeros(2, 64), (1, 8, 8), rotation=[1.0, 2.0, 3.0])


def test_cpu_generator_gives_the_same_output_on_every_device():
    x = images(4, (1, 8, 8))
    augment = make_augmentation("affine", (1, 8, 8))
    expected = augment(x, generator(0))
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    out = augment(x.cuda(), generator(0))
    assert out.device == x.cuda().device
    torch.testing.assert_close(out.cpu(), expected, atol=1e-5, rtol=0)
    cuda_generator = torch.Generator(device="cuda").manual_seed(0)
    assert augment(x.cuda(), cuda_generator).device.type == "cuda"


def test_rotation_direction_is_counter_clockwise():
    # A dot right of the centre goes above it after +90 degrees.
    C, H, W = image_shape = (1, 5, 5)
    x = torch.zeros(1, C, H, W)
    x[..., 2, 4] = 1
    out = affine_transform(x.flatten(1), image_shape, rotation=90.0).view_as(x)
    assert math.isclose(out[..., 0, 2].item(), 1, abs_tol=1e-5)
    assert math.isclose(out.sum().item(), 1, abs_tol=1e-5)
