"""skdiffclust.diffusion: the noise schedule, forward noising, the reverse
samplers and the terms of the variational bound."""

import math

import numpy as np
import pytest
import torch

from skdiffclust.diffusion import (
    SAMPLERS,
    NoiseSchedule,
    decoder_nll,
    linear_beta_schedule,
    posterior_kl,
    prior_kl,
    reverse_diffusion,
    stratified_timesteps,
    variational_bound,
)
from skdiffclust.losses import gaussian_kl


# ------------------------------------------------------------------ schedule
@pytest.mark.parametrize("n_timesteps", [1, 10, 400])
def test_linear_schedule_matches_formula(n_timesteps):
    betas, alpha_bars = linear_beta_schedule(n_timesteps)
    t = np.arange(n_timesteps + 1)
    expected_betas = 1e-4 + (0.02 - 1e-4) * t / n_timesteps
    np.testing.assert_allclose(betas.numpy(), expected_betas, rtol=1e-12)
    np.testing.assert_allclose(alpha_bars.numpy(), np.cumprod(1 - expected_betas), rtol=1e-12)
    assert betas[-1].item() == pytest.approx(0.02)

    schedule = NoiseSchedule(n_timesteps)
    np.testing.assert_allclose(
        schedule.alpha_bars.numpy(), np.cumprod(1 - expected_betas), rtol=1e-6
    )


def test_schedule_tables_are_float64_with_float32_copies():
    schedule = NoiseSchedule(30, beta_start=1e-3, beta_end=0.05)
    betas, alpha_bars = linear_beta_schedule(30, 1e-3, 0.05)
    assert schedule.betas64.dtype == schedule.alpha_bars64.dtype == torch.float64
    assert schedule.betas.dtype == schedule.alpha_bars.dtype == torch.float32
    assert torch.equal(schedule.betas64, betas) and torch.equal(schedule.alpha_bars64, alpha_bars)
    assert torch.equal(schedule.betas, betas.float())
    assert torch.equal(schedule.alpha_bars, alpha_bars.float())
    assert schedule.device == torch.device("cpu")


def test_add_noise_and_timesteps():
    schedule = NoiseSchedule(20)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([1, 5, 10, 15, 20])
    ab = schedule.alpha_bars[t][:, None]
    expected = ab.sqrt() * x + (1 - ab).sqrt() * noise
    torch.testing.assert_close(schedule.add_noise(x, t, noise), expected)

    with torch.random.fork_rng():
        torch.manual_seed(0)
        uniform = schedule.sample_timesteps(20_000, 1.0, "cpu")
        skewed = schedule.sample_timesteps(20_000, 3.0, "cpu")
    assert uniform.min() == 1 and uniform.max() == 20
    assert uniform.float().mean().item() == pytest.approx(10.5, abs=0.15)
    # ceil(T u^(1/3)) has mean about 3T/4 + 1/2.
    assert skewed.float().mean().item() == pytest.approx(15.5, abs=0.3)


@pytest.mark.parametrize(
    "n_steps, expected",
    [(None, [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]), (10, list(range(10, 0, -1))), (4, [10, 7, 4, 1])],
)
def test_sampler_timesteps_run_from_T_down_to_1(n_steps, expected):
    assert NoiseSchedule(10).timesteps(n_steps) == expected


def test_timesteps_merge_when_more_steps_than_timesteps():
    # Rounding merges neighbours: never a timestep twice.
    assert NoiseSchedule(3).timesteps(8) == [3, 2, 1]


# ------------------------------------------------------------------ samplers
class ToyDenoiser(torch.nn.Module):
    """A fixed nonlinear eps(x_t, z, t/T) that uses all three inputs."""

    def __init__(self, n_features, latent_dim):
        super().__init__()
        generator = torch.Generator().manual_seed(123)
        self.W = torch.randn(n_features, n_features, generator=generator) / n_features
        self.V = torch.randn(latent_dim, n_features, generator=generator)

    def forward(self, x, z, t):
        return torch.tanh(x @ self.W + z @ self.V * (1.0 - t) + 0.5 * t)


def reference_ancestral(denoiser, z, n_timesteps, n_features, guidance):
    """The paper's update, written out in float64 with its own schedule:
    beta_t = 1e-4 + (0.02 - 1e-4) t / T, a_t = 1 - beta_t, ab_t = prod_{s<=t} a_s;
    x_{t-1} = (x_t - eps (1 - a_t) / sqrt(1 - ab_t)) / sqrt(a_t) + sqrt(beta_t) n,
    n = 0 at the last step, eps = (1 + w) eps(z) - w eps(0)."""
    n = z.shape[0]
    T = n_timesteps
    betas = [1e-4 + (0.02 - 1e-4) * t / T for t in range(T + 1)]
    alpha_bars, product = [], 1.0
    for beta in betas:
        product *= 1.0 - beta
        alpha_bars.append(product)
    # Same order of draws from torch's generator as any sampler would make.
    x = torch.randn(n, n_features).double()
    for t in range(T, 0, -1):
        t_frac = torch.full((n, 1), t / T)
        eps = denoiser(x.float(), z, t_frac).double()
        if guidance:
            eps_free = denoiser(x.float(), torch.zeros_like(z), t_frac).double()
            eps = (1 + guidance) * eps - guidance * eps_free
        noise = torch.randn(n, n_features).double() if t > 1 else 0.0
        alpha = 1.0 - betas[t]
        x = (x - eps * (1.0 - alpha) / math.sqrt(1.0 - alpha_bars[t])) / math.sqrt(alpha)
        x = x + math.sqrt(betas[t]) * noise
    return x


def _run(seed, *args, **kwargs):
    """``reverse_diffusion`` with torch's global generator seeded, then restored."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return reverse_diffusion(*args, **kwargs)


@pytest.mark.parametrize("guidance", [0.0, 1.5])
def test_ancestral_sampler_is_the_papers_update(guidance):
    n_features, latent_dim, T = 5, 3, 40
    denoiser = ToyDenoiser(n_features, latent_dim)
    z = torch.randn(32, latent_dim, generator=torch.Generator().manual_seed(1))
    schedule = NoiseSchedule(T)
    got = _run(0, denoiser, z, schedule, (n_features,), "ancestral", guidance=guidance)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        expected = reference_ancestral(denoiser, z, T, n_features, guidance)
    assert got.shape == (32, n_features)
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-4)
    # The ancestral sampler's default, and all T steps asked for explicitly.
    torch.testing.assert_close(
        _run(0, denoiser, z, schedule, (n_features,), guidance=guidance), got, rtol=0, atol=0
    )
    torch.testing.assert_close(
        _run(0, denoiser, z, schedule, (n_features,), "ancestral", T, guidance),
        got,
        rtol=0,
        atol=0,
    )


def test_ddim_is_deterministic_given_the_initial_noise_and_z():
    n_features, latent_dim, T = 4, 2, 50
    denoiser = ToyDenoiser(n_features, latent_dim)
    schedule = NoiseSchedule(T)
    z = torch.randn(16, latent_dim, generator=torch.Generator().manual_seed(2))
    runs = [_run(7, denoiser, z, schedule, (n_features,), "ddim", n) for n in (10, 10, T)]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    # Only the initial noise is random: a different z changes the result,
    # and the number of steps changes the discretisation.
    other = _run(7, denoiser, z + 1.0, schedule, (n_features,), "ddim", 10)
    assert not torch.allclose(other, runs[0])
    assert not torch.allclose(runs[2], runs[0])
    # Without n_steps, DDIM visits all T timesteps.
    full = _run(7, denoiser, z, schedule, (n_features,), "ddim")
    torch.testing.assert_close(full, runs[2], rtol=0, atol=0)


def _oracle(schedule, target):
    """The exact noise predictor for data concentrated at ``target``:
    eps(x_t, t) = (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t)."""

    def denoiser(x, z, t_frac):
        t = (t_frac[:, 0] * schedule.n_timesteps).round().long()
        ab = schedule.alpha_bars[t][:, None]
        return (x - ab.sqrt() * target) / (1 - ab).sqrt()

    return denoiser


@pytest.mark.parametrize(
    "sampler, n_steps",
    [("ancestral", None), ("ddim", 1), ("ddim", 7), ("ddim", 400), ("ddim", None)],
)
def test_samplers_recover_a_point_mass(sampler, n_steps):
    # With the exact noise of a point mass, DDIM (eta = 0) lands exactly on it
    # from any start and with any number of steps; the ancestral sampler lands
    # within the noise of its last steps.
    schedule = NoiseSchedule(400)
    target = torch.tensor([0.3, -1.2, 2.0])
    z = torch.zeros(50, 1)
    x = _run(3, _oracle(schedule, target), z, schedule, (3,), sampler, n_steps)
    assert x.shape == (50, 3)
    if sampler == "ddim":
        torch.testing.assert_close(x, target.expand(50, 3), rtol=0, atol=1e-4)
    else:
        # The last ancestral steps add sqrt(beta_t) noise of about 0.01.
        assert (x - target).abs().max().item() < 0.1


def test_samplers_visit_the_timesteps_of_the_schedule():
    schedule = NoiseSchedule(12)
    seen = []

    def denoiser(x, z, t_frac):
        seen.append(round(t_frac[0, 0].item() * 12))
        return torch.zeros_like(x)

    z = torch.zeros(2, 1)
    for sampler, n_steps in [("ancestral", None), ("ddim", None), ("ddim", 4)]:
        seen.clear()
        _run(0, denoiser, z, schedule, (3,), sampler, n_steps)
        assert seen == schedule.timesteps(n_steps)


def test_samplers_are_the_schedules_step_methods():
    assert set(SAMPLERS) == {"ancestral", "ddim"}
    schedule = NoiseSchedule(10)
    for name in SAMPLERS.values():
        assert callable(getattr(schedule, name))


def test_reverse_diffusion_rejects_bad_samplers():
    schedule = NoiseSchedule(10)
    args = (ToyDenoiser(3, 1), torch.zeros(2, 1), schedule, (3,))
    with pytest.raises(ValueError, match=r"sampler must be one of \['ancestral', 'ddim'\]"):
        reverse_diffusion(*args, sampler="euler")
    with pytest.raises(ValueError, match="ancestral sampler visits all 10 timesteps"):
        reverse_diffusion(*args, sampler="ancestral", n_steps=5)


def test_ancestral_step_visits_every_timestep():
    schedule = NoiseSchedule(10)
    x = torch.ones(2, 3)
    with pytest.raises(ValueError, match="visits every timestep"):
        schedule.ancestral_step(x, torch.zeros_like(x), 5, 3)
    # No noise at the last step: with eps = 0 it only rescales by 1 / sqrt(a_1).
    out = schedule.ancestral_step(x, torch.zeros_like(x), 1, 0)
    torch.testing.assert_close(out, x / (1.0 - schedule.betas[1]).sqrt())


def test_ddim_step_to_zero_is_the_predicted_clean_sample():
    schedule = NoiseSchedule(10)
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    t = torch.full((4,), 6)
    x_t = schedule.add_noise(x0, t, eps)
    torch.testing.assert_close(schedule.ddim_step(x_t, eps, 6, 0), x0)
    # To an intermediate timestep: the forward noising of x0 with the same eps.
    expected = schedule.add_noise(x0, torch.full((4,), 2), eps)
    torch.testing.assert_close(schedule.ddim_step(x_t, eps, 6, 2), expected)


# ------------------------------------------------------- terms of the bound
def test_posterior_kl_matches_the_kl_of_the_explicit_gaussians():
    T, n, n_features = 40, 64, 5
    betas, alpha_bars = linear_beta_schedule(T)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, n_features, generator=gen, dtype=torch.float64)
    eps = torch.randn(n, n_features, generator=gen, dtype=torch.float64)
    eps_pred = eps + 0.3 * torch.randn(n, n_features, generator=gen, dtype=torch.float64)
    t = torch.randint(2, T + 1, (n,), generator=gen)

    beta, ab, ab_prev = betas[t, None], alpha_bars[t, None], alpha_bars[t - 1, None]
    alpha = 1.0 - beta
    x_t = ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps
    # q(x_{t-1} | x_t, x_0) from its definition (Ho et al. 2020, eq. 6-7).
    posterior_mean = (ab_prev.sqrt() * beta * x0 + alpha.sqrt() * (1.0 - ab_prev) * x_t) / (
        1.0 - ab
    )
    posterior_var = (1.0 - ab_prev) / (1.0 - ab) * beta
    # The sampler's step: its mean and variance beta_t.
    model_mean = (x_t - beta / (1.0 - ab).sqrt() * eps_pred) / alpha.sqrt()
    expected = gaussian_kl(
        posterior_mean,
        posterior_var.expand(-1, n_features),
        model_mean,
        beta.expand(-1, n_features),
    )
    np.testing.assert_allclose(
        posterior_kl(eps, eps_pred, t, betas, alpha_bars).numpy(), expected.numpy(), rtol=1e-9
    )
    # A perfect prediction leaves only the variance mismatch, which is >= 0.
    exact = posterior_kl(eps, eps, t, betas, alpha_bars)
    assert torch.all(exact >= 0) and torch.all(exact < expected)


def test_prior_kl_matches_the_kl_of_the_explicit_gaussians():
    _, alpha_bars = linear_beta_schedule(10)
    x0 = torch.linspace(-2, 3, 12, dtype=torch.float64).view(3, 4)
    ab = alpha_bars[10]
    expected = gaussian_kl(ab.sqrt() * x0, (1 - ab).expand(3, 4), 0.0, torch.ones(3, 4))
    np.testing.assert_allclose(prior_kl(x0, ab).numpy(), expected.numpy(), rtol=1e-12)


@pytest.mark.parametrize("T, k", [(400, 50), (400, 399), (11, 3), (2, 1)])
def test_stratified_timesteps_cover_2_to_T(T, k):
    u = torch.rand(1000, k, generator=torch.Generator().manual_seed(0))
    u[0] = 0.0
    u[1] = 1.0 - 1e-8  # rounds to 1 in float32
    t, weights = stratified_timesteps(u, T)
    assert weights.sum() == T - 1
    assert t.min() == 2 and t.max() == T
    # Strata are contiguous, in order, and one draw of each weighs its size.
    edges = 2 + torch.cumsum(torch.cat([torch.zeros(1), weights]), 0).long()
    assert torch.all((t >= edges[:-1]) & (t < edges[1:]))
    if k == T - 1:
        assert torch.equal(t, torch.arange(2, T + 1).expand(1000, -1))


def test_stratified_timesteps_reject_more_strata_than_timesteps():
    with pytest.raises(ValueError, match="10 strata do not fit in the 9 timesteps"):
        stratified_timesteps(torch.zeros(1, 10), 10)


def test_variational_bound_reads_the_schedules_own_tables():
    # Every timestep once (k = T - 1, unit weights) and one draw of x_1: the
    # bound is the sum of its terms on the float64 tables of this schedule,
    # whose betas are not the default ones.
    T, n, n_features = 8, 3, 4
    schedule = NoiseSchedule(T, beta_start=1e-3, beta_end=0.2)
    betas, alpha_bars = linear_beta_schedule(T, 1e-3, 0.2)
    denoiser = ToyDenoiser(n_features, 2)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, n_features, generator=gen)
    z = torch.randn(n, 2, generator=gen)
    noise = torch.randn(n, T, n_features, generator=gen)
    t, weights = stratified_timesteps(torch.zeros(n, T - 1), T)
    bound = variational_bound(denoiser, x0, z, schedule, t, weights, noise)

    expected = prior_kl(x0, alpha_bars[T])
    for i, step in enumerate(range(2, T + 1)):
        x_t = schedule.add_noise(x0, torch.full((n,), step), noise[:, i])
        eps_pred = denoiser(x_t, z, torch.full((n, 1), step / T))
        expected = expected + posterior_kl(
            noise[:, i], eps_pred, torch.full((n,), step), betas, alpha_bars
        )
    x_1 = schedule.add_noise(x0, torch.ones(n, dtype=torch.long), noise[:, -1])
    eps_pred = denoiser(x_1, z, torch.full((n, 1), 1 / T))
    expected = expected + decoder_nll(x0, x_1, eps_pred, betas, alpha_bars)
    assert bound.dtype == torch.float64
    torch.testing.assert_close(bound, expected, rtol=1e-6, atol=1e-6)
