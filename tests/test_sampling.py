"""The reverse samplers: the ancestral one is the DESIGN.md update, DDIM is deterministic."""

import math

import pytest
import torch

from skdiffclust.diffusion import NoiseSchedule, ancestral_sample, ddim_sample


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
    """DESIGN.md's update, written out in float64 with its own schedule:
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


@pytest.mark.parametrize("guidance", [0.0, 1.5])
def test_ancestral_sampler_is_the_design_update(guidance):
    n_features, latent_dim, T = 5, 3, 40
    denoiser = ToyDenoiser(n_features, latent_dim)
    z = torch.randn(32, latent_dim, generator=torch.Generator().manual_seed(1))
    schedule = NoiseSchedule(T)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        got = ancestral_sample(denoiser, z, schedule, (n_features,), guidance)
        torch.manual_seed(0)
        expected = reference_ancestral(denoiser, z, T, n_features, guidance)
    assert got.shape == (32, n_features)
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-4)


def test_ddim_is_deterministic_given_the_initial_noise_and_z():
    n_features, latent_dim, T = 4, 2, 50
    denoiser = ToyDenoiser(n_features, latent_dim)
    schedule = NoiseSchedule(T)
    z = torch.randn(16, latent_dim, generator=torch.Generator().manual_seed(2))
    runs = []
    for n_steps in (10, 10, T):
        with torch.random.fork_rng():
            torch.manual_seed(7)
            runs.append(ddim_sample(denoiser, z, schedule, (n_features,), n_steps))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    # Only the initial noise is random: a different z changes the result,
    # and the number of steps changes the discretisation.
    with torch.random.fork_rng():
        torch.manual_seed(7)
        other = ddim_sample(denoiser, z + 1.0, schedule, (n_features,), 10)
    assert not torch.allclose(other, runs[0])
    assert not torch.allclose(runs[2], runs[0])


@pytest.mark.parametrize("n_steps", [1, 7, 400])
def test_ddim_with_the_exact_noise_of_a_point_mass_recovers_it(n_steps):
    # For data that is a point mass at x0, the exact noise predictor is
    # eps(x_t, t) = (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t), and DDIM (eta = 0)
    # lands exactly on x0 from any start and with any number of steps.
    schedule = NoiseSchedule(400)
    target = torch.tensor([0.3, -1.2, 2.0])

    def exact(x, z, t_frac):
        t = torch.round(t_frac[:, 0] * schedule.n_timesteps).long()
        ab = schedule.alpha_bars[t][:, None]
        return (x - ab.sqrt() * target) / (1.0 - ab).sqrt()

    z = torch.zeros(50, 1)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        x = ddim_sample(exact, z, schedule, (3,), n_steps)
    torch.testing.assert_close(x, target.expand(50, 3), rtol=0, atol=1e-4)
