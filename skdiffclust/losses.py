"""Divergences between diagonal Gaussians and from q(z|x) to a Gaussian mixture.

All functions take torch tensors and are differentiable; the last dimension is
the latent dimension and is summed over.
"""

import math

import torch

from .distributed import batch_covariance

_LOG_2PI = math.log(2.0 * math.pi)


def reparameterize(mean, log_var):
    """A sample of N(mean, diag exp(log_var)) that gradients flow through."""
    return mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)


def gaussian_kl(mean1, var1, mean2, var2):
    """KL(N(mean1, diag var1) || N(mean2, diag var2)), summed over the last axis."""
    return 0.5 * torch.sum(
        torch.log(var2) - torch.log(var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0,
        dim=-1,
    )


def skew_js_divergence(mean1, var1, mean2, var2, alpha=0.5):
    """Nielsen's skew geometric Jensen-Shannon divergence of diagonal Gaussians.

    With the geometric mixture ``N_a`` of variance
    ``v_a = 1 / ((1 - a) / v1 + a / v2)`` and mean
    ``m_a = v_a ((1 - a) m1 / v1 + a m2 / v2)``, the divergence is
    ``(1 - a) KL(N1 || N_a) + a KL(N2 || N_a)``, summed over dimensions. It is
    zero only for equal Gaussians and symmetric at ``alpha=0.5``.

    Parameters
    ----------
    mean1, var1, mean2, var2 : torch.Tensor
        Means and variances, broadcastable against each other.
    alpha : float, default=0.5
        Skew in (0, 1).

    Returns
    -------
    torch.Tensor
        The divergence with the last axis summed out.

    References
    ----------
    F. Nielsen, "On the Jensen-Shannon symmetrization of distances relying on
    abstract means", Entropy 21(5):485, 2019.
    """
    precision_a = (1.0 - alpha) / var1 + alpha / var2
    var_a = 1.0 / precision_a
    mean_a = var_a * ((1.0 - alpha) * mean1 / var1 + alpha * mean2 / var2)
    return (1.0 - alpha) * gaussian_kl(mean1, var1, mean_a, var_a) + alpha * gaussian_kl(
        mean2, var2, mean_a, var_a
    )


def component_divergence(mean, var, mixture, divergence="ajs", alpha=0.5):
    """Divergence from each q(z|x_n) to each component of a diagonal mixture.

    Parameters
    ----------
    mean, var : torch.Tensor of shape (n_samples, n_dims)
        Parameters of q(z|x) = N(mean, diag var).
    mixture : TorchMixture
        The mixture; its components are taken as diagonal Gaussians (the
        diagonal of a full covariance otherwise).
    divergence : {"ajs", "kl"}, default="ajs"
        ``"ajs"`` is :func:`skew_js_divergence` with skew ``alpha``; ``"kl"`` is
        KL(q(z|x) || component), as in Lim, Jiang and Yi (2020).
    alpha : float, default=0.5
        Skew of ``"ajs"``, in (0, 1).

    Returns
    -------
    torch.Tensor of shape (n_samples, n_components)
    """
    args = (mean[:, None, :], var[:, None, :], mixture.means[None], mixture.variances()[None])
    if divergence == "ajs":
        return skew_js_divergence(*args, alpha=alpha)
    if divergence == "kl":
        return gaussian_kl(*args)
    raise ValueError(f"divergence must be 'ajs' or 'kl', got {divergence!r}.")


def mixture_log_joint(z, mixture):
    """``log pi_k + log N(z_n; m_k, S_k)`` for every sample and component.

    Parameters
    ----------
    z : torch.Tensor of shape (n_samples, n_dims)
    mixture : TorchMixture

    Returns
    -------
    torch.Tensor of shape (n_samples, n_components)
    """
    diff = z[:, None, :] - mixture.means[None]  # (n, K, d)
    if mixture.covariance_type == "diag":
        mahalanobis = torch.sum((diff * mixture.precisions_cholesky[None]) ** 2, dim=-1)
    else:
        # precision = L L^T, so the squared Mahalanobis distance is ||L^T diff||^2.
        projected = torch.einsum("nkd,kde->nke", diff, mixture.precisions_cholesky)
        mahalanobis = torch.sum(projected**2, dim=-1)
    n_dims = z.shape[1]
    return mixture.log_weights - 0.5 * (
        n_dims * _LOG_2PI + mahalanobis - 2.0 * mixture.log_det_precisions_cholesky
    )


def mixture_kl(z, mean, log_var, mixture, components=None):
    """VaDE's KL from q(z, c | x) to the fixed mixture prior p(z, c), per sample.

    ``q(z|x) = N(mean, diag exp(log_var))`` and ``q(c|x) = gamma``, the mixture
    posterior evaluated at the sampled ``z`` (not detached, as in the authors'
    code), or the one-hot of a given component per sample. The expectation
    over ``z`` of the Gaussian terms is taken in closed form::

        KL = sum_k gamma_k E_q[-log N(z; m_k, S_k)] - sum_k gamma_k log(pi_k / gamma_k)
             - 1/2 sum_j (1 + log 2 pi + log sigma_j^2)

    Parameters
    ----------
    z : torch.Tensor of shape (n_samples, n_dims)
        A sample from q(z|x), used for the responsibilities.
    mean, log_var : torch.Tensor of shape (n_samples, n_dims)
        Parameters of q(z|x).
    mixture : TorchMixture
    components : torch.Tensor of shape (n_samples,), default=None
        The component of each sample, for a hard ``q(c|x)`` (whose entropy is
        zero); None: the posterior ``gamma``.

    Returns
    -------
    torch.Tensor of shape (n_samples,)
    """
    # E_q[-log N(z; m_k, S_k)] = -log N(mean; m_k, S_k) + tr(S_k^-1 diag var) / 2.
    if mixture.covariance_type == "diag":
        precision_diagonals = mixture.precisions_cholesky**2  # (K, d)
    else:
        # precision = L L^T, whose diagonal holds the squared norms of L's rows.
        precision_diagonals = torch.sum(mixture.precisions_cholesky**2, dim=-1)
    trace = torch.exp(log_var) @ precision_diagonals.T  # (n, K)
    log_joint_at_mean = mixture_log_joint(mean, mixture)  # log pi_k + log N(mean; m_k, S_k)
    entropy_q = 0.5 * torch.sum(1.0 + _LOG_2PI + log_var, dim=1)
    cross_entropy = 0.5 * trace - log_joint_at_mean  # E_q[-log p(z, c = k)]
    if components is not None:
        return cross_entropy.gather(1, components[:, None])[:, 0] - entropy_q
    gamma = torch.softmax(mixture_log_joint(z, mixture), dim=1) + 1e-10
    gamma = gamma / gamma.sum(dim=1, keepdim=True)
    return torch.sum(gamma * (cross_entropy + torch.log(gamma)), dim=1) - entropy_q


def latent_spread_penalty(z):
    """Penalty on a batch of codes whose variance folds onto a few directions.

    The variance and covariance terms of VICReg (Bardes, Ponce and LeCun,
    ICLR 2022) on codes of unit mean variance: the mean over dimensions of
    ``max(0, 1 - std_j)`` plus the sum of squared off-diagonal covariances
    divided by the dimension. Zero when the codes have identity covariance.

    Parameters
    ----------
    z : torch.Tensor of shape (n_samples, n_dims)
        The batch of codes, with ``n_samples >= 2``; under
        :func:`~skdiffclust.distributed.synchronized_batches`, this rank's
        part of the batch of all ranks.
    """
    covariance = batch_covariance(z)
    variances = torch.diagonal(covariance)
    # The small constant keeps the gradient of the root finite at zero variance.
    hinge = torch.relu(1 - torch.sqrt(variances + 1e-4)).mean()
    off_diagonal = covariance - torch.diag(variances)
    return hinge + torch.sum(off_diagonal**2) / z.shape[1]
