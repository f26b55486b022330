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
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture
from sklearn.utils._param_validation import StrOptions

#: How the first E-step's mixture can be started: Ward's agglomerative
#: clustering of the codes, or one of BayesianGaussianMixture's own options.
INIT_PARAMS = ("ward", "kmeans", "k-means++", "random", "random_from_data")

#: Starts that also need the number of clusters to be known: a Gaussian
#: mixture on a UMAP embedding of the codes (needs umap-learn).
MANIFOLD_INIT_PARAMS = ("umap",)

#: Every start, for estimators whose number of clusters is given.
GIVEN_K_INIT_PARAMS = (*INIT_PARAMS, *MANIFOLD_INIT_PARAMS)

#: UMAP's neighbourhood size for ``init_params="umap"`` (UMAP's default).
UMAP_N_NEIGHBORS = 15

#: Starts of the Gaussian mixture in the UMAP embedding; the likeliest is kept.
#: A single k-means start often merges two classes' manifolds and splits a
#: third, and the embedding is small, so the extra starts cost little.
UMAP_GMM_N_INIT = 10

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


def check_umap_installed():
    """Raise an ImportError naming the extra when umap-learn is missing."""
    try:
        import umap  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "ClusterDDPM's UMAP starts (init_params='umap-input', the default, or 'umap') "
            "need umap-learn, a dependency of "
            "skdiffclust that is not importable here: pip install umap-learn, or pass "
            "init_params='ward'."
        ) from exc


def umap_embedder(shape, n_clusters, seed):
    """The unfitted UMAP of :func:`umap_labels` for codes of ``shape`` (n_samples, n_dims)."""
    from umap import UMAP

    n_samples, n_dims = shape
    return UMAP(
        n_components=max(2, min(n_clusters, n_dims)),
        n_neighbors=min(UMAP_N_NEIGHBORS, n_samples - 1),
        min_dist=0.0,
        random_state=seed,
        n_jobs=1,
    )


def umap_labels(Z, n_clusters, random_state):
    """Partition ``Z`` by a Gaussian mixture on its UMAP embedding.

    The embedding has ``n_clusters`` dimensions (at most those of ``Z``) and
    ``min_dist=0``, as in N2D (McConville et al., 2021): UMAP keeps the local
    neighbourhoods of the codes and pulls each class's manifold together, so
    that clusters which are not Gaussian in the code space become Gaussian
    in the embedding.
    """
    seed = int(random_state.randint(np.iinfo(np.int32).max))
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            # Small data: UMAP warns that it falls back to a random start.
            warnings.simplefilter("ignore", UserWarning)
            embedding = umap_embedder(Z.shape, n_clusters, seed).fit_transform(Z)
    finally:
        # numba's threading layer resets torch's thread count when it starts.
        torch.set_num_threads(threads)
    gmm = GaussianMixture(n_clusters, random_state=seed, reg_covar=1e-5, n_init=UMAP_GMM_N_INIT)
    return gmm.fit(embedding).predict(embedding)


class LatentMixture(BayesianGaussianMixture):
    """:class:`~sklearn.mixture.BayesianGaussianMixture` that can also start
    from Ward's agglomerative clustering (``init_params="ward"``) or from a
    Gaussian mixture on a UMAP embedding of the codes (``init_params="umap"``).

    On the latent codes of the deep clusterers, the mixture's variational fit
    stops in the local optimum nearest to its start, and a better likelihood
    does not mean a better clustering: Ward's tree follows the local structure
    of the codes, where k-means (or random starts) cut across it.
    """

    _parameter_constraints = {
        **BayesianGaussianMixture._parameter_constraints,
        "init_params": [StrOptions(set(GIVEN_K_INIT_PARAMS))],
    }

    def _initialize_parameters(self, X, random_state, *args, **kwargs):
        # Set only for the duration of refit_from_partition's fit.
        if getattr(self, "_start_partition", None) is not None:
            labels = self._start_partition
        elif self.init_params == "ward":
            labels = ward_labels(X, self.n_components, random_state)
        elif self.init_params == "umap":
            labels = umap_labels(X, self.n_components, random_state)
        else:
            return super()._initialize_parameters(X, random_state, *args, **kwargs)
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

    @classmethod
    def for_posterior(cls, mixture, device, components=None, dtype=torch.float64):
        """The posterior of a fitted sklearn mixture, as sklearn computes it.

        Unlike :meth:`from_sklearn`, whose ``log_weights`` are the normalised
        point estimates of the weights (the prior of the network loss),
        ``log_weights`` here hold every term of sklearn's
        ``_estimate_weighted_log_prob`` that does not depend on ``z``: for a
        :class:`~sklearn.mixture.BayesianGaussianMixture`, the expected log
        weight and the Wishart expectations of the precision. :meth:`log_proba`
        then equals :func:`restricted_log_proba` over the same components.

        Parameters
        ----------
        mixture : GaussianMixture or BayesianGaussianMixture
            Fitted, with ``covariance_type`` ``"diag"`` or ``"full"``.
        device : str or torch.device
        components : array-like of int, default=None
            Components to keep (all by default).
        dtype : torch.dtype, default=torch.float64
            float64 reproduces sklearn's argmax; float32 is twice as fast
            and may differ on near ties.

        Returns
        -------
        view : TorchMixture
        """
        view = cls.from_sklearn(mixture, device, components=components, dtype=dtype)
        keep = slice(None) if components is None else np.asarray(components)
        prec_chol = mixture.precisions_cholesky_[keep]
        if mixture.covariance_type == "full":
            prec_chol = np.diagonal(prec_chol, axis1=1, axis2=2)
        log_det = np.sum(np.log(prec_chol), axis=1)
        # At a component's own mean its Mahalanobis term is zero, so sklearn's
        # weighted log-probability there is the constant sought plus the
        # Gaussian normaliser, whatever the kind of mixture.
        at_means = np.diagonal(mixture._estimate_weighted_log_prob(mixture.means_))[keep]
        n_dims = mixture.means_.shape[1]
        constant = at_means + 0.5 * n_dims * np.log(2 * np.pi) - log_det
        view.log_weights = torch.as_tensor(constant, dtype=dtype, device=view.means.device)
        return view

    #: Rows per block of :meth:`log_proba`: the block's temporaries stay in
    #: cache, which is several times faster than one pass over all rows.
    _posterior_batch_size = 2048

    def log_proba(self, z):
        """Log posterior ``log p(k | z)`` over the components held, normalised.

        The log joint ``log_weights_k + log N(z; m_k, S_k)`` of
        :func:`~skdiffclust.losses.mixture_log_joint`, computed as matrix
        products without its ``(n, K, d)`` temporaries, then a log-sum-exp
        normalisation. ``"full"``: one ``(n, d) x (d, K d)`` product gives
        ``L_k^T z`` for every component, minus ``L_k^T m_k``; ``"diag"``: the
        expanded quadratic form ``z^2 p - 2 z (m p) + m^2 p`` (``p`` the
        precisions) is one ``(n, 2 d) x (2 d, K)`` product. Differentiable.

        Parameters
        ----------
        z : torch.Tensor or ndarray of shape (n_samples, n_dims)
            Cast to the view's dtype and device.

        Returns
        -------
        log_proba : torch.Tensor of shape (n_samples, n_components)
        """
        means, prec_chol = self.means, self.precisions_cholesky
        z = torch.as_tensor(z, dtype=means.dtype, device=means.device)
        n_components, n_dims = means.shape
        if self.covariance_type == "diag":
            precisions = prec_chol**2
            weights = torch.cat([precisions.T, -2.0 * (means * precisions).T])
            offset = torch.sum(means**2 * precisions, dim=1)
        else:
            # Column block k of ``weights`` is L_k, so z @ weights stacks L_k^T z.
            weights = prec_chol.permute(1, 0, 2).reshape(n_dims, n_components * n_dims)
            offset = torch.einsum("kd,kde->ke", means, prec_chol).reshape(-1)
        constant = self.log_weights + self.log_det_precisions_cholesky
        constant = constant - 0.5 * n_dims * np.log(2 * np.pi)
        blocks = []
        for start in range(0, z.shape[0], self._posterior_batch_size):
            rows = z[start : start + self._posterior_batch_size]
            if self.covariance_type == "diag":
                mahalanobis = torch.cat([rows**2, rows], dim=1) @ weights + offset
            else:
                projected = (rows @ weights - offset).view(-1, n_components, n_dims)
                mahalanobis = torch.sum(projected**2, dim=-1)
            blocks.append(torch.log_softmax(constant - 0.5 * mahalanobis, dim=1))
        if not blocks:
            return z.new_empty((0, n_components))
        return torch.cat(blocks)


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


def refit_from_partition(mixture, Z, labels, max_iter):
    """A fresh copy of ``mixture`` fitted on ``Z`` from the hard partition ``labels``.

    Component ``k`` starts from the codes labelled ``k``, so the components keep
    the partition's order. ``max_iter`` variational iterations follow; a
    single one fits the components' shapes to the partition without moving
    towards another. A label without codes gives its component the prior.
    """
    mixture = clone(mixture).set_params(max_iter=max_iter)
    _regularize_default_covariance_prior(mixture, Z)
    mixture._start_partition = np.asarray(labels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mixture.fit(Z)
    finally:
        del mixture._start_partition
    return mixture


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
    if not warm_restart:
        _regularize_default_covariance_prior(mixture, Z)
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


def _regularize_default_covariance_prior(mixture, Z):
    """Give a singular default covariance prior the mixture's ``reg_covar``.

    scikit-learn's default prior is the empirical covariance of ``Z``, singular
    when there are no more codes than dimensions (or a code dimension is
    constant). A component that loses its codes then gets the prior alone as
    covariance, and its Cholesky factorisation fails. The prior is left as it
    is otherwise, so results on ordinary data do not change.
    """
    if mixture.covariance_prior is not None or mixture.covariance_type not in ("full", "diag"):
        return
    if mixture.covariance_type == "full":
        prior = np.atleast_2d(np.cov(Z, rowvar=False))
        if len(Z) > 1 and np.linalg.eigvalsh(prior)[0] > mixture.reg_covar:
            return
        prior = prior + mixture.reg_covar * np.eye(Z.shape[1])
    else:
        prior = np.var(Z, axis=0, ddof=1) if len(Z) > 1 else np.zeros(Z.shape[1])
        if np.min(prior) > mixture.reg_covar:
            return
        prior = prior + mixture.reg_covar
    mixture.set_params(covariance_prior=prior)


def occupied_components(mixture, Z):
    """Sorted indices of the components that are the argmax for some row of ``Z``."""
    return np.unique(mixture.predict(Z))


def restricted_log_proba(mixture, Z, components):
    """Log posterior over ``components`` only, renormalised, shape (n, len(components))."""
    log_joint = mixture._estimate_weighted_log_prob(Z)[:, components]
    log_norm = np.logaddexp.reduce(log_joint, axis=1, keepdims=True)
    return log_joint - log_norm


def restricted_log_proba_torch(mixture, Z, components, device="cpu", dtype=torch.float64):
    """:func:`restricted_log_proba` computed by torch on ``device``, as numpy.

    For repeated calls with the same mixture (chunks of one ``predict``),
    build :meth:`TorchMixture.for_posterior` once and call its
    :meth:`~TorchMixture.log_proba` on each chunk.

    Returns
    -------
    log_proba : ndarray of shape (n_samples, len(components)), dtype float64
    """
    view = TorchMixture.for_posterior(mixture, device, components=components, dtype=dtype)
    with torch.inference_mode():
        return view.log_proba(Z).cpu().numpy().astype(np.float64, copy=False)
