"""Noise schedule, forward noising, the reverse samplers and the variational
bound of a DDPM."""

import math

import torch

_LOG_2PI = math.log(2.0 * math.pi)


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
    """The linear beta schedule: its tables, forward noising and the reverse steps.

    The float64 tables ``betas64`` and ``alpha_bars64`` (indexed ``t = 0 .. T``)
    are the single source; ``betas`` and ``alpha_bars`` are their float32
    copies for the networks' computations. As in diffusers' schedulers, the
    schedule owns the update of one reverse step (:meth:`ancestral_step`,
    :meth:`ddim_step`) and the timesteps a sampler visits
    (:meth:`timesteps`); :func:`reverse_diffusion` owns the loop.

    Parameters
    ----------
    n_timesteps : int
        Number of diffusion steps ``T``.
    device : torch.device
    beta_start, beta_end : float
        The first and last ``beta_t``.
    """

    def __init__(self, n_timesteps, device="cpu", beta_start=1e-4, beta_end=0.02):
        self.n_timesteps = n_timesteps
        self.beta_start = beta_start
        self.beta_end = beta_end
        betas, alpha_bars = linear_beta_schedule(n_timesteps, beta_start, beta_end)
        self.betas64 = betas.to(device)
        self.alpha_bars64 = alpha_bars.to(device)
        self.betas = self.betas64.float()
        self.alpha_bars = self.alpha_bars64.float()

    @property
    def device(self):
        return self.betas64.device

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

    def timesteps(self, n_steps=None):
        """The timesteps a sampler visits, from ``T`` down to 1.

        All ``T`` of them when ``n_steps`` is None, else ``n_steps`` evenly
        spaced ones (fewer when rounding merges neighbours).
        """
        T = self.n_timesteps
        if n_steps is None:
            return list(range(T, 0, -1))
        return torch.linspace(T, 1, n_steps).round().long().unique_consecutive().tolist()

    def ancestral_step(self, x, eps, t, t_prev):
        """One DDPM step from ``t`` to ``t - 1`` (``t_prev`` must be ``t - 1``):
        ``(x_t - eps (1 - a_t) / sqrt(1 - ab_t)) / sqrt(a_t) + sqrt(beta_t) n``,
        with fresh noise ``n``, none at the last step."""
        if t_prev != t - 1:
            raise ValueError("the ancestral sampler visits every timestep; use 'ddim' to skip.")
        alpha = 1.0 - self.betas[t]
        noise = torch.randn_like(x) if t > 1 else torch.zeros_like(x)
        x = (x - eps * (1.0 - alpha) / (1.0 - self.alpha_bars[t]).sqrt()) / alpha.sqrt()
        return x + self.betas[t].sqrt() * noise

    def ddim_step(self, x, eps, t, t_prev):
        """One deterministic DDIM step (eta = 0) from ``t`` to ``t_prev``; to the
        predicted clean ``x_0`` when ``t_prev`` is 0."""
        ab_t = self.alpha_bars[t]
        x0 = (x - (1.0 - ab_t).sqrt() * eps) / ab_t.sqrt()
        if t_prev == 0:
            return x0
        ab_prev = self.alpha_bars[t_prev]
        return ab_prev.sqrt() * x0 + (1.0 - ab_prev).sqrt() * eps


#: Names of the reverse samplers, to :class:`NoiseSchedule` step methods.
SAMPLERS = {"ancestral": "ancestral_step", "ddim": "ddim_step"}


def _guided_noise(denoiser, x, z, t_frac, guidance):
    eps = denoiser(x, z, t_frac)
    if guidance:
        eps = (1.0 + guidance) * eps - guidance * denoiser(x, torch.zeros_like(z), t_frac)
    return eps


def _time_column(value, n, device):
    return torch.full((n, 1), float(value), device=device)


def reverse_diffusion(
    denoiser, z, schedule, shape, sampler="ancestral", n_steps=None, guidance=0.0
):
    """Generate ``x_0`` from pure noise given the codes ``z``.

    Parameters
    ----------
    denoiser : callable
        ``eps(x_t, z, t/T)``.
    z : torch.Tensor of shape (n, latent_dim)
    schedule : NoiseSchedule
    shape : tuple of int
        Shape of one sample.
    sampler : {"ancestral", "ddim"}, default="ancestral"
        A name of :data:`SAMPLERS`: the stochastic DDPM reverse process, or
        the deterministic DDIM one.
    n_steps : int, default=None
        Timesteps visited (see :meth:`NoiseSchedule.timesteps`); None visits
        all ``T``. The ancestral sampler needs all of them.
    guidance : float, default=0.0
        Classifier-free guidance ``w``: ``eps = (1 + w) eps(z) - w eps(0)``.

    Returns
    -------
    torch.Tensor of shape (n, *shape)
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}.")
    if sampler == "ancestral" and n_steps not in (None, schedule.n_timesteps):
        raise ValueError(
            f"the ancestral sampler visits all {schedule.n_timesteps} timesteps; "
            f"n_steps={n_steps} needs sampler='ddim'."
        )
    step = getattr(schedule, SAMPLERS[sampler])
    timesteps = schedule.timesteps(n_steps)
    n, T = z.shape[0], schedule.n_timesteps
    x = torch.randn(n, *shape, device=z.device)
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else 0
        eps = _guided_noise(denoiser, x, z, _time_column(t / T, n, z.device), guidance)
        x = step(x, eps, t, t_prev)
    return x


# ----------------------------------------------------------- variational bound
# Ho et al. (2020), eq. 5, for continuous data. The data is x_0; the noisy
# levels are t = 1..T with q(x_t|x_0) = N(sqrt(ab_t) x_0, (1 - ab_t) I), where
# ab_t = alpha_bars[t] (so the first level, t = 1, has variance 1 - ab_1;
# alpha_bars[0] is never used). The reverse steps are those of
# :func:`ancestral_sample`, with variance beta_t.


def _sum_of_squares(diff):
    # In float64: the bound sums many terms over features and timesteps.
    return torch.sum(diff.double() ** 2, dim=-1)


def stratified_timesteps(u, n_timesteps, power=3.0):
    """Timesteps in ``2..T`` by stratified sampling, with their weights.

    ``2..T`` is split into ``k = u.shape[-1]`` contiguous strata
    (``k <= T - 1``), and stratum ``i`` gets one uniform draw, from
    ``u[..., i]``. ``sum_i weights[i] f(t[..., i])`` is then an unbiased
    estimate of ``sum_{t=2}^T f(t)``. The strata widen with ``t``: stratum
    ``i`` starts at ``2 + i + floor((T - 1 - k) (i / k)^power)``, so the first
    timesteps, whose terms of the bound are the largest and vary the most, get
    a stratum each (on digits this cut the spread of the estimate threefold
    against equal strata). With ``k = T - 1`` every timestep is taken once.

    Parameters
    ----------
    u : torch.Tensor of shape (n, k)
        Uniform numbers in [0, 1).
    n_timesteps : int
        ``T``.
    power : float, default=3.0
        How fast the strata widen; 1 gives strata of near-equal sizes.

    Returns
    -------
    t : torch.Tensor of shape (n, k), int64
    weights : torch.Tensor of shape (k,), float64
        The size of each stratum.
    """
    k = u.shape[-1]
    if k > n_timesteps - 1:
        raise ValueError(f"{k} strata do not fit in the {n_timesteps - 1} timesteps 2..T.")
    # Computed on the CPU in float64: the strata must not depend on the device.
    i = torch.arange(k + 1)
    spread = torch.floor((n_timesteps - 1 - k) * (i / max(k, 1)).double() ** power).long()
    edges = (2 + i + spread).to(u.device)
    sizes = edges[1:] - edges[:-1]
    t = edges[:-1] + (u * sizes).long()
    # u * size can round up to size in float32.
    return torch.minimum(t, edges[1:] - 1), sizes.double()


def prior_kl(x0, alpha_bar_T):
    """``L_T = KL(q(x_T|x_0) || N(0, I))`` per row, float64."""
    n_features = x0.shape[-1]
    return 0.5 * (
        alpha_bar_T * _sum_of_squares(x0) - n_features * (alpha_bar_T + torch.log1p(-alpha_bar_T))
    )


def posterior_kl(eps, eps_pred, t, betas, alpha_bars):
    """``L_{t-1} = KL(q(x_{t-1}|x_t, x_0) || p(x_{t-1}|x_t, z))`` for ``t >= 2``.

    With ``x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps``, the posterior
    ``q(x_{t-1}|x_t, x_0)`` has variance ``beta~_t = (1 - ab_{t-1}) / (1 - ab_t)
    beta_t`` and the model's step (the sampler's) has variance ``beta_t`` and
    mean ``(x_t - beta_t / sqrt(1 - ab_t) eps_pred) / sqrt(alpha_t)``, so the
    means differ by ``beta_t / sqrt(alpha_t (1 - ab_t)) (eps_pred - eps)`` and::

        L_{t-1} = 1/2 sum_j [r - 1 - log r + beta_t / (alpha_t (1 - ab_t)) (eps_j - eps_pred_j)^2],
        r = beta~_t / beta_t.

    Parameters
    ----------
    eps, eps_pred : torch.Tensor of shape (..., n_features)
        The noise of ``x_t`` and the denoiser's prediction of it.
    t : torch.Tensor of shape (...), int64
        Timesteps in ``2..T``.
    betas, alpha_bars : torch.Tensor of shape (T + 1,)
        The schedule, float64 for accuracy (``r`` is close to 1 at large ``t``).

    Returns
    -------
    torch.Tensor of shape (...), float64
    """
    beta, alpha_bar, alpha_bar_prev = betas[t], alpha_bars[t], alpha_bars[t - 1]
    ratio = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
    n_features = eps.shape[-1]
    variance_term = 0.5 * n_features * (ratio - 1.0 - torch.log(ratio))
    mean_weight = 0.5 * beta / ((1.0 - beta) * (1.0 - alpha_bar))
    return variance_term + mean_weight * _sum_of_squares(eps - eps_pred)


def decoder_nll(x0, x1, eps_pred, betas, alpha_bars):
    """``L_0 = -log N(x_0; mu(x_1, z, 1), beta_1 I)`` per row, float64.

    ``mu`` is the sampler's last step; the density is Gaussian, not
    discretised, as the data is continuous.
    """
    beta, alpha_bar = betas[1], alpha_bars[1]
    mean = (x1.double() - beta / torch.sqrt(1.0 - alpha_bar) * eps_pred.double()) / torch.sqrt(
        1.0 - beta
    )
    n_features = x0.shape[-1]
    return 0.5 * (
        _sum_of_squares(x0.double() - mean) / beta + n_features * (_LOG_2PI + torch.log(beta))
    )


def variational_bound(denoiser, x0, z, schedule, t, weights, noise):
    """Ho et al.'s upper bound on ``-log p(x_0|z)``, per row, in nats.

    ``L_T + sum_{t=2}^T L_{t-1} + L_0`` (:func:`prior_kl`, :func:`posterior_kl`,
    :func:`decoder_nll`), with the sum over ``t`` estimated as
    ``sum_i weights[i] L_{t_i - 1}`` (see :func:`stratified_timesteps`) and
    ``L_0`` averaged over ``m`` draws of ``x_1`` (it varies the most from one
    draw to the next). One denoiser pass covers all ``k + m`` of every row.

    Parameters
    ----------
    denoiser : callable
        ``eps(x_t, z, t/T)``.
    x0 : torch.Tensor of shape (n, n_features)
    z : torch.Tensor of shape (n, latent_dim)
    schedule : NoiseSchedule
    t : torch.Tensor of shape (n, k), int64
        Timesteps in ``2..T``; ``k`` may be 0.
    weights : torch.Tensor of shape (k,), float64
    noise : torch.Tensor of shape (n, k + m, n_features)
        Standard normal noise of ``x_t`` for the ``k`` timesteps, then of the
        ``m >= 1`` draws of ``x_1``.

    Returns
    -------
    torch.Tensor of shape (n,), float64
    """
    n, k = t.shape
    n_passes = noise.shape[1]
    T = schedule.n_timesteps
    betas, alpha_bars = schedule.betas64, schedule.alpha_bars64
    ones = torch.ones(n, n_passes - k, dtype=t.dtype, device=t.device)
    t_all = torch.cat([t, ones], dim=1).reshape(-1)
    x_t = schedule.add_noise(
        x0.repeat_interleave(n_passes, dim=0), t_all, noise.reshape(n * n_passes, -1)
    )
    t_frac = (t_all.to(x0.dtype) / T)[:, None]
    eps_pred = denoiser(x_t, z.repeat_interleave(n_passes, dim=0), t_frac).reshape(noise.shape)
    x_t = x_t.reshape(noise.shape)
    steps = posterior_kl(noise[:, :k], eps_pred[:, :k], t, betas, alpha_bars) @ weights
    last = decoder_nll(x0[:, None], x_t[:, k:], eps_pred[:, k:], betas, alpha_bars)
    return prior_kl(x0, alpha_bars[T]) + steps + last.mean(dim=1)
