"""Standardisation of the latent means inside an encoder."""

import torch
from torch import nn

from ..distributed import batch_mean_and_variance


class StandardizedGaussianEncoder(nn.Module):
    """A Gaussian encoder whose latent means are centred and scaled to unit size.

    The means are centred per dimension and divided by one global scale, the
    root of their mean variance over dimensions (batch statistics in training,
    over the batches of all ranks under
    :func:`~skdiffclust.distributed.synchronized_batches`; running averages in
    evaluation, as in batch normalisation, which
    :meth:`set_statistics` can replace by exact ones); the variances of
    q(z|x) follow the same scaling. The latent space thus keeps its shape but has
    a fixed size, so mixture priors can be given in absolute units and the
    clustering loss cannot shrink the whole latent space to win.
    """

    def __init__(self, encoder, latent_dim, momentum=0.1, eps=1e-5):
        super().__init__()
        self.encoder = encoder
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(latent_dim))
        self.register_buffer("running_var", torch.ones(()))

    @torch.no_grad()
    def set_statistics(self, raw_means):
        """Replace the running statistics by those of ``raw_means``, the
        unscaled latent means of the whole training set (shape (n, latent_dim))."""
        raw_means = raw_means.to(torch.float64)
        self.running_mean.copy_(raw_means.mean(dim=0))
        self.running_var.copy_(raw_means.var(dim=0, unbiased=False).mean())

    def standardize(self, mean):
        """Standardise raw latent means with the running statistics."""
        return (mean - self.running_mean) * torch.rsqrt(self.running_var + self.eps)

    def forward(self, x):
        mean, log_var = self.encoder(x)
        if self.training and mean.shape[0] > 1:
            # Under data-parallel training, the statistics of every rank's batch.
            center, var = batch_mean_and_variance(mean, correction=0)
            var = var.mean()
            with torch.no_grad():
                self.running_mean.lerp_(center.detach(), self.momentum)
                self.running_var.lerp_(var.detach(), self.momentum)
        else:
            center, var = self.running_mean, self.running_var
        var = var + self.eps
        return (mean - center) * torch.rsqrt(var), log_var - torch.log(var)
