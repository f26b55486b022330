"""Noise schedule, forward noising and the reverse samplers of a DDPM."""

import torch


def linear_beta_schedule(n_timesteps, beta_start=1e-4, beta_end=0.02):
    """The DDPM schedule of the authors' code, indexed by ``t = 0 .. T``.

    ``beta_t = beta_start + (beta_end - beta_start) t / T`` and
    ``alpha_bar_t = prod_{s <= t} (1 - beta_s)``, computed as the exponential of
    a cumulative sum of logs for accuracy.

    Returns
    -------
    betas, alpha_bars : torch.Tensor of shape (n_timesteps + 1,), float64
    """
    t = torch.arange(n_timesteps + 1, dtype=torch.float64)
    betas = beta_start + (beta_end - beta_start) * t / n_timesteps
    alpha_bars = torch.exp(torch.cumsum(torch.log1p(-betas), dim=0))
    return betas, alpha_bars


class NoiseSchedule:
    """Linear beta schedule with the tensors a training step and a sampler need.

    Parameters
    ----------
    n_timesteps : int
        Number of diffusion steps ``T``.
    device : torch.device
    """

    def __init__(self, n_timesteps, device="cpu"):
        self.n_timesteps = n_timesteps
        betas, alpha_bars = linear_beta_schedule(n_timesteps)
        self.betas = betas.float().to(device)
        self.alpha_bars = alpha_bars.float().to(device)

    def sample_timesteps(self, n, skew, device):
        """Draw ``t`` in ``1..T`` as ``ceil(T u^(1/skew))``; ``skew=1`` is uniform.

        A skew above 1 favours large ``t``, where the noisy input says little and
        the denoiser must rely on the latent code: this is what makes the latent
        cluster-friendly on small data.
        """
        u = torch.rand(n, device=device)
        t = torch.ceil(self.n_timesteps * u ** (1.0 / skew)).long()
        return t.clamp_(1, self.n_timesteps)

    def add_noise(self, x, t, noise):
        """Forward process: ``sqrt(ab_t) x + sqrt(1 - ab_t) noise``."""
        ab = self.alpha_bars[t].view(-1, *([1] * (x.dim() - 1)))
        return ab.sqrt() * x + (1.0 - ab).sqrt() * noise


def _guided_noise(denoiser, x, z, t_frac, guidance):
    eps = denoiser(x, z, t_frac)
    if guidance:
        eps = (1.0 + guidance) * eps - guidance * denoiser(x, torch.zeros_like(z), t_frac)
    return eps


def _time_column(value, n, device):
    return torch.full((n, 1), float(value), device=device)


def ancestral_sample(denoiser, z, schedule, shape, guidance=0.0):
    """The DDPM reverse process of the authors' code, from ``t = T`` to 1.

    ``x_{t-1} = (x_t - eps (1 - a_t) / sqrt(1 - ab_t)) / sqrt(a_t) + sqrt(beta_t) n``,
    with ``n = 0`` at the last step and ``eps = (1 + w) eps(z) - w eps(0)``.
    """
    n = z.shape[0]
    x = torch.randn(n, *shape, device=z.device)
    T = schedule.n_timesteps
    for t in range(T, 0, -1):
        eps = _guided_noise(denoiser, x, z, _time_column(t / T, n, z.device), guidance)
        alpha = 1.0 - schedule.betas[t]
        noise = torch.randn_like(x) if t > 1 else torch.zeros_like(x)
        x = (x - eps * (1.0 - alpha) / (1.0 - schedule.alpha_bars[t]).sqrt()) / alpha.sqrt()
        x = x + schedule.betas[t].sqrt() * noise
    return x


def ddim_sample(denoiser, z, schedule, shape, n_steps, guidance=0.0):
    """Deterministic DDIM sampler (eta = 0) on ``n_steps`` evenly spaced timesteps."""
    n = z.shape[0]
    T = schedule.n_timesteps
    timesteps = torch.linspace(T, 1, n_steps).round().long().unique_consecutive().tolist()
    x = torch.randn(n, *shape, device=z.device)
    for i, t in enumerate(timesteps):
        ab_t = schedule.alpha_bars[t]
        ab_prev = schedule.alpha_bars[timesteps[i + 1]] if i + 1 < len(timesteps) else None
        eps = _guided_noise(denoiser, x, z, _time_column(t / T, n, z.device), guidance)
        x0 = (x - (1.0 - ab_t).sqrt() * eps) / ab_t.sqrt()
        if ab_prev is None:
            x = x0
        else:
            x = ab_prev.sqrt() * x0 + (1.0 - ab_prev).sqrt() * eps
    return x
