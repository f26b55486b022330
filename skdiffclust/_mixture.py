"""The E-step: a Bayesian Gaussian mixture on the latent codes.

scikit-learn's :class:`~sklearn.mixture.BayesianGaussianMixture` does the work;
this module adds what the deep clusterers need around it: warm-started refits,
compact labels (sklearn never prunes empty components, so its labels can have
gaps) and a torch view of the fitted parameters for the network loss.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.base import clone
from sklearn.cluster import AgglomerativeClustering
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import pairwise_distances_argmin
from sklearn.mixture import BayesianGaussianMixture
from sklearn.utils._param_validation import StrOptions

#: Variational iterations of a full (not warm-started) mixture fit.
FULL_FIT_MAX_ITER = 200


#: Ward's linkage needs memory quadratic in the number of rows: above this many
#: latent codes, the initial partition is computed on a random subset of them.
WARD_MAX_SAMPLES = 5000


def ward_labels(Z, n_clusters, random_state):
    """Partition ``Z`` into ``n_clusters`` by Ward's agglomerative clustering.

    Above :data:`WARD_MAX_SAMPLES` rows, the tree is built on a random subset
    and every row goes to the nearest centroid of the subset's clusters.
    """
    if len(Z) <= WARD_MAX_SAMPLES:
        return AgglomerativeClustering(n_clusters, linkage="ward").fit_predict(Z)
    subset = Z[random_state.choice(len(Z), WARD_MAX_SAMPLES, replace=False)]
    subset_labels = AgglomerativeClustering(n_clusters, linkage="ward").fit_predict(subset)
    centroids = np.stack([subset[subset_labels == k].mean(axis=0) for k in range(n_clusters)])
    return pairwise_distances_argmin(Z, centroids)


class LatentMixture(BayesianGaussianMixture):
    """:class:`~sklearn.mixture.BayesianGaussianMixture` that can also start
    from Ward's agglomerative clustering (``init_params="ward"``).

    On the latent codes of the deep clusterers, the mixture's variational fit
    stops in the local optimum nearest to its start, and a better likelihood
    does not mean a better clustering: Ward's tree follows the local structure
    of the codes, where k-means (or random starts) cut across it.
    """

    _parameter_constraints = {
        **BayesianGaussianMixture._parameter_constraints,
        "init_params": [StrOptions({"kmeans", "k-means++", "random", "random_from_data", "ward"})],
    }

    def _initialize_parameters(self, X, random_state, *args, **kwargs):
        if self.init_params != "ward":
            return super()._initialize_parameters(X, random_state, *args, **kwargs)
        labels = ward_labels(X, self.n_components, random_state)
        resp = np.zeros((len(X), self.n_components), dtype=X.dtype)
        resp[np.arange(len(X)), labels] = 1
        self._initialize(X, resp)


@dataclass
class TorchMixture:
    """Parameters of a fitted Gaussian mixture as torch tensors (float32 by default).

    ``precisions_cholesky`` has shape (K, d) for ``"diag"`` (``1 / sqrt(var)``)
    and (K, d, d) for ``"full"`` (``precision = L L^T``), as in scikit-learn.
    """

    covariance_type: str
    log_weights: torch.Tensor
    means: torch.Tensor
    precisions_cholesky: torch.Tensor
    log_det_precisions_cholesky: torch.Tensor

    @classmethod
    def from_sklearn(cls, mixture, device, components=None, dtype=torch.float32):
        """Build from a fitted sklearn mixture, optionally keeping some components."""
        keep = slice(None) if components is None else np.asarray(components)
        weights = mixture.weights_[keep]
        prec_chol = mixture.precisions_cholesky_[keep]
        if mixture.covariance_type == "diag":
            log_det = np.sum(np.log(prec_chol), axis=1)
        elif mixture.covariance_type == "full":
            log_det = np.sum(np.log(np.diagonal(prec_chol, axis1=1, axis2=2)), axis=1)
        else:  # pragma: no cover - the estimators only allow diag and full
            raise ValueError(f"Unsupported covariance_type {mixture.covariance_type!r}.")

        def as_tensor(a):
            return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)

        return cls(
            covariance_type=mixture.covariance_type,
            log_weights=as_tensor(np.log(weights / weights.sum())),
            means=as_tensor(mixture.means_[keep]),
            precisions_cholesky=as_tensor(prec_chol),
            log_det_precisions_cholesky=as_tensor(log_det),
        )

    def variances(self):
        """Diagonal of each component's covariance, shape (K, d)."""
        if self.covariance_type == "diag":
            return self.precisions_cholesky**-2
        covariances = torch.linalg.inv(
            self.precisions_cholesky @ self.precisions_cholesky.transpose(1, 2)
        )
        return torch.diagonal(covariances, dim1=1, dim2=2)


def make_mixture(
    n_components,
    *,
    covariance_type,
    weight_concentration_prior_type,
    weight_concentration_prior,
    random_state,
    max_iter=FULL_FIT_MAX_ITER,
    mean_precision_prior=None,
    covariance_prior=None,
    degrees_of_freedom_prior=None,
    init_params="kmeans",
):
    """A warm-startable ``BayesianGaussianMixture`` for the latent space.

    The priors left to None take scikit-learn's data-dependent defaults;
    ``init_params`` is passed on (see the estimators' parameter of that name).
    """
    return LatentMixture(
        n_components=n_components,
        covariance_type=covariance_type,
        weight_concentration_prior_type=weight_concentration_prior_type,
        weight_concentration_prior=weight_concentration_prior,
        mean_precision_prior=mean_precision_prior,
        covariance_prior=covariance_prior,
        degrees_of_freedom_prior=degrees_of_freedom_prior,
        init_params=init_params,
        max_iter=max_iter,
        reg_covar=1e-5,
        warm_start=True,
        random_state=random_state,
    )


def fit_mixture(mixture, Z, max_iter=None, keep_all_components=False):
    """Fit (or, if already fitted, warm-restart) ``mixture`` on latent codes ``Z``.

    ``max_iter`` limits the number of variational iterations of a warm restart:
    the previous solution is a good start, and a few iterations follow the
    slowly moving latents. Convergence warnings of such short refits are
    expected and silenced.

    A warm restart cannot bring back a component that lost all its points
    (its mean stays where the data left). With ``keep_all_components``, such
    a refit is replaced by a fresh fit from a k-means initialisation, for
    estimators whose number of clusters is given.

    Returns
    -------
    mixture : BayesianGaussianMixture
        ``mixture`` itself, or the fresh replacement.
    """
    warm_restart = hasattr(mixture, "converged_")
    if max_iter is not None:
        mixture.set_params(max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mixture.fit(Z)
        if (
            keep_all_components
            and warm_restart
            and len(occupied_components(mixture, Z)) < mixture.n_components
        ):
            mixture = clone(mixture).set_params(max_iter=FULL_FIT_MAX_ITER).fit(Z)
    return mixture


def occupied_components(mixture, Z):
    """Sorted indices of the components that are the argmax for some row of ``Z``."""
    return np.unique(mixture.predict(Z))


def restricted_log_proba(mixture, Z, components):
    """Log posterior over ``components`` only, renormalised, shape (n, len(components))."""
    log_joint = mixture._estimate_weighted_log_prob(Z)[:, components]
    log_norm = np.logaddexp.reduce(log_joint, axis=1, keepdims=True)
    return log_joint - log_norm
