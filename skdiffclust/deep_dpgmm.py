"""DeepDPGMMClusterer: autoencoder clustering with a Dirichlet-process mixture."""

import dataclasses
import math
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import BaseDeepClusterer
from ._merge import merge_clusters
from ._mixture import make_mixture, occupied_components, refit_from_partition
from ._param_validation import integers, reals
from ._split import split_clusters
from .augmentation import AUGMENTATION_PRESETS, TrainingAugmentation
from .losses import (
    component_divergence,
    latent_spread_penalty,
    mixture_log_joint,
    reparameterize,
)
from .nn import StandardizedGaussianEncoder

#: ``latent_dim=None`` gives codes of this size, or of the input's if smaller.
DEFAULT_LATENT_DIM = 10

#: The first E-step doubles the truncation while every component holds codes,
#: as long as each component would still have this many rows on average.
MIN_ROWS_PER_COMPONENT = 5

#: ``cluster_scale="auto"`` is AUTO_SCALE when the E-step's mixture is fitted on
#: AUTO_SCALE_SAMPLES rows (the value chosen on digits, 1,797 rows).
AUTO_SCALE = 1.7
AUTO_SCALE_SAMPLES = 1800

#: ``pretrain_epochs="auto"`` is AUTO_PRETRAIN_EPOCHS epochs, or as many as make
#: MIN_PRETRAIN_STEPS optimisation steps when the epochs are short.
AUTO_PRETRAIN_EPOCHS = 150
MIN_PRETRAIN_STEPS = 1500

#: A split of the first E-step's K0 clusters into K1 multiplies the prior scale
#: by (K0 / K1) ** SPLIT_SHRINK_POWER. The square root, which keeps each
#: cluster's share of the prior as its rows fall, let training merge split
#: clusters again: the groups a split separates are the closest in the data.
#: ``benchmarks/split_shrink.py`` measures the power (user guide, "Splitting
#: what the prior merged").
SPLIT_SHRINK_POWER = 1.0


def auto_cluster_scale(n_samples):
    """The prior scale ``cluster_scale="auto"`` gives a mixture fitted on ``n_samples`` rows.

    ``AUTO_SCALE * (n_samples / AUTO_SCALE_SAMPLES) ** (1 / 4)``. With a fixed
    covariance prior, the Dirichlet process keeps more clusters the more rows
    it sees, because the prior's pseudo-samples weigh less against larger
    clusters; growing the scale with the number of rows counters that. The
    exponent is empirical (see the user guide, "The Dirichlet-process prior").
    """
    return AUTO_SCALE * (n_samples / AUTO_SCALE_SAMPLES) ** 0.25


def auto_pretrain_epochs(steps_per_epoch):
    """The pretraining epochs ``pretrain_epochs="auto"`` gives epochs of ``steps_per_epoch`` steps.

    ``max(AUTO_PRETRAIN_EPOCHS, ceil(MIN_PRETRAIN_STEPS / steps_per_epoch))``:
    an epoch of a small data set is one or two minibatches, and 150 of them
    leave the autoencoder far from trained, so the pretraining runs at least
    1,500 steps (as many as 150 epochs make on 1,280 rows with the default
    ``batch_size``). See the user guide, "Pretraining length".
    """
    return max(AUTO_PRETRAIN_EPOCHS, math.ceil(MIN_PRETRAIN_STEPS / steps_per_epoch))


class DeepDPGMMClusterer(BaseDeepClusterer):
    """Deep clustering with a Dirichlet-process mixture that finds the number of clusters.

    An autoencoder whose encoder gives q(z|x) = N(mu(x), diag var(x)) is
    pretrained on reconstruction. The fit then alternates an E-step, a truncated
    Dirichlet-process Gaussian mixture
    (:class:`~sklearn.mixture.BayesianGaussianMixture` with
    ``weight_concentration_prior_type="dirichlet_process"``) refitted on the
    latent means, warm-started, and a network step of one epoch of the
    reconstruction loss plus ``clustering_weight`` times a divergence between
    q(z|x) and the component each sample is assigned to, the mixture held fixed
    (plus ``spread_weight`` times a penalty that keeps the latent space from
    folding onto a few directions, an addition to the paper's loss).
    The number of clusters is the number of components that keep samples; it
    shrinks during training ("deep model selection").

    Read more in Lim, "Deep Clustering using Dirichlet Process Gaussian Mixture
    and Alpha Jensen-Shannon Divergence Clustering Loss", arXiv:2412.08940.

    Parameters
    ----------
    n_components : int, default=30
        Initial truncation level of the Dirichlet process (capped at the
        number of rows). When the first E-step uses every component, the
        truncation doubles and the mixture is fitted again, as long as each
        component would keep at least 5 rows on average; the value used is
        ``n_components_``. Raise it for data with many clusters, to save the
        refits; a warning says when the final truncation is full.

    latent_dim : int or None, default=None
        Size of the latent code ``z``. None means 10, or the number of input
        features if that is smaller: a code with more dimensions than the
        input has no reason to compress, and the spread penalty then fills
        the extra dimensions with variance the data do not have. The value
        used is ``network_spec_.latent_dim``.

    hidden_dims : tuple of int, default=(512, 256)
        Widths of the MLP encoder's hidden layers (the decoder mirrors them).
        With ``image_shape``, only the last entry is used, as the width of the
        dense layer between the convolutions and the latent heads.

    image_shape : tuple of 3 int, default=None
        ``(C, H, W)``: treat each row of ``X`` as a flattened image and use a
        convolutional encoder and decoder. One entry may be -1, inferred from
        the number of features.

    conv_width : int, default=32
        Channels of the first convolution level of the encoder and decoder.
        Used only with ``image_shape``. Wider networks fit images better and
        train more slowly.

    encoder : {"conv", "residual"}, default="conv"
        The image encoder (used only with ``image_shape``). ``"conv"``: two
        strided 3x3 convolutions and a dense layer of width
        ``hidden_dims[-1]``, mirrored by the decoder. ``"residual"``: the
        encoder of ClusterDDPM's authors (residual convolution blocks at full
        resolution, two pooling levels, global average pooling), of width
        ``conv_width``; many times slower per epoch.

    augmentation : {"affine", "shift_rotate"}, default=None
        Random image augmentation during training (only with
        ``image_shape``), as in DEC-DA (Guo, Zhu, Liu and Yin, ACML 2018): the
        encoder sees a randomly transformed view of each image and the decoder
        reconstructs the clean image, in pretraining and in the network steps;
        in a network step the component a sample is pulled towards is chosen
        from the code of its clean image and the divergence is that of the
        augmented view's q(z|x), so the codes of all views of an image gather
        in one cluster. The E-step, :meth:`predict` and :meth:`transform` use
        the clean images. ``"affine"``: shifts up to 10% of the size, rotations
        and shears up to 10 degrees, scalings by 0.9 to 1.1;
        ``"shift_rotate"``: the shifts and rotations only. None (the method's
        own setting) trains on the clean images. Use it for images whose class
        does not change under these transforms (digits, letters, most
        photographs) and that are large enough for a shift of a few pixels:
        on tiny images (8x8) it can lower the accuracy, as the user guide
        shows. See :mod:`skdiffclust.augmentation`.

    augmentation_strength : float, default=1.0
        Factor on all the ranges of ``augmentation``; 0 turns it off exactly.
        Lower it for small or tightly cropped images.

    divergence : {"ajs", "kl"}, default="ajs"
        Clustering loss between q(z|x) and its component. ``"ajs"`` is the
        closed-form skew geometric Jensen-Shannon divergence (Nielsen, 2019)
        with skew ``alpha``; ``"kl"`` is KL(q(z|x) || component), the loss of
        the predecessor method (Lim, Jiang and Yi, 2020).

    alpha : float, default=0.5
        Skew of the ``"ajs"`` divergence, in (0, 1); 0.5 makes it symmetric.

    assignment : {"hard", "soft"}, default="hard"
        ``"hard"`` pulls each sample towards its most probable component;
        ``"soft"`` weights the divergence to every component by the mixture
        responsibilities.

    clustering_weight : float, default=1.0
        Weight of the clustering loss against the reconstruction loss (squared
        error summed over features). It is what makes clusters merge during
        training, and it easily overshoots: lower it when
        ``n_clusters_history_`` falls far below the count of the first E-step.

    spread_weight : float, default=1.0
        Weight of a penalty, in the network step, on the batch's standardised
        latent means: the mean over dimensions of ``max(0, 1 - std_j)`` plus
        the squared off-diagonal covariances divided by ``latent_dim`` (the
        variance and covariance terms of VICReg, Bardes, Ponce and LeCun,
        2022). It keeps the network steps from folding the latent space onto
        a few directions (watch ``history_["latent_effective_dim"]``), after
        which the Dirichlet process merges clusters. 0 is the paper's loss.

    weight_concentration_prior : float, default=None
        Concentration of the Dirichlet process; None means ``1 / n_components``.
        Smaller values favour fewer clusters.

    init_params : {"ward", "random", "kmeans", "k-means++", \
            "random_from_data"}, default="ward"
        How the first E-step's mixture is initialised: ``"ward"`` from Ward's
        agglomerative clustering of the latent means into ``n_components``
        clusters, the others as in
        :class:`~sklearn.mixture.BayesianGaussianMixture`. The Dirichlet
        process then empties the components the data do not support. Ward's
        tree follows the local structure of the latent space; a k-means start
        cuts across it and plants ``n_components`` clusters that the
        variational fit tends to keep.

    cluster_scale : float or "auto", default="auto"
        Prior standard deviation of a cluster along each latent dimension, in
        units of the standardised latent space (whose per-dimension variance
        averages 1); it sets the mixture's ``covariance_prior`` (worth
        ``latent_dim`` pseudo-samples). Larger values favour fewer, wider
        clusters: raise it when too many clusters are found, lower it when
        too few. A fixed value finds more clusters in more rows, so ``"auto"``
        uses ``1.7 * (n / 1800) ** (1 / 4)`` for a mixture fitted on ``n``
        rows (``n_samples``, or ``e_step_max_samples`` if smaller). The value
        used is ``cluster_scale_``. The count depends on ``latent_dim`` too.
        At least 1e-3.

    split_valley : float, default=0.6
        After the first E-step, a cluster is cut in two by 2-means when its
        latent means, projected on the 2-means axis (an axis fitted without
        the projected rows), have two modes whose density at the valley
        between them is below ``split_valley`` times the lower mode's; both
        halves are tested again. This recovers clusters that the prior merged
        because they are small, as on data with many classes of few rows
        each, and needs no scale. Raise it to split more readily, lower it to
        split less; 0 turns the splitting off. Each half keeps at least
        ``2 * MIN_ROWS_PER_COMPONENT`` rows.

    merge_neighbors : int, default=0
        With a positive value, clusters are merged after the first E-step (and
        its splits) while a merge raises the modularity of the symmetric
        ``merge_neighbors``-nearest-neighbour graph of the latent means: two
        clusters are merged when they share more edges than a random graph
        with the same degrees would give them. This undoes the cuts a Gaussian
        mixture makes in curved or elongated groups of codes. Set it (10 is a
        usual graph size) when the fit finds more clusters than the data hold;
        the merged clusters need not follow the classes, so accuracy can fall
        as the count improves. Raise it for a coarser graph (fewer, larger
        clusters). 0, the default, turns the merging off.

    covariance_type : {"full", "diag"}, default="full"
        Covariance of the mixture components. The method's own choice is
        ``"diag"``; full covariances follow the elongated clusters of the
        latent space with fewer components. The clustering loss compares
        q(z|x) with the diagonal of a full component's covariance.

    pretrain_epochs : int or "auto", default="auto"
        Epochs of the plain reconstruction loss before the first E-step. They
        take most of the fit time; fewer give codes that cluster worse.
        ``"auto"`` is 150 epochs, or more on data sets of 1,152 rows or fewer
        (with the default ``batch_size``): as many as make 1,500
        optimisation steps, since an epoch of a small data set is only one or
        two minibatches (see :func:`auto_pretrain_epochs`). The value used is
        ``pretrain_epochs_``.

    n_iter : int, default=30
        EM iterations, each one epoch of the network step then an E-step.

    batch_size : int, default=128
        Minibatch size of the network steps.

    learning_rate : float, default=1e-3
        Adam's learning rate.

    scaling : {"auto", "global", "feature"} or None, default="auto"
        How ``X`` is scaled before training (the inverse is applied to
        :meth:`sample`'s output). ``"global"`` maps the training data's overall
        minimum and maximum to 0 and 1, keeping the relative scale of features
        (right for images and other intensities). ``"feature"`` standardises
        each feature (right for tabular data; a no-op on the output of
        :class:`~sklearn.preprocessing.StandardScaler`). ``"auto"`` takes
        ``"global"`` when every value is non-negative and either integral
        (pixel values, counts) or at most 1, and ``"feature"`` otherwise; the
        choice is ``scaling_``. None uses ``X`` as it is.

    device : str, default="auto"
        Torch device: "auto" (CUDA when available, else CPU), "cpu", "cuda"
        or "cuda:N".

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, minibatches, noise and the E-step.
        Only local generators are seeded: the global numpy and torch random
        states are left untouched.

    verbose : int, default=0
        Print the loss, the number of occupied clusters and the time of each
        epoch (adds :class:`~skdiffclust.callbacks.PrintProgress` to the
        callbacks).

    callbacks : list of Callback, default=None
        Observers of the training loop (:class:`~skdiffclust.callbacks.Callback`
        instances), called after each epoch and each E-step with the losses,
        the latent codes and the mixture.

    e_step_max_samples : int, default=None
        Fit the E-step's mixture on at most this many latent codes, a random
        subset drawn anew at each E-step; clusters are still predicted for
        every sample. None (exact, the default) uses all. Set it for very large
        data sets, where the E-step's time grows with the number of rows.

    warm_start : bool, default=False
        If True and the estimator is fitted, :meth:`fit` skips pretraining and
        runs ``n_iter`` more EM iterations from the current state (the weights,
        the mixture and Adam's moment estimates, which a pickle keeps too).

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of each training sample, in ``0 .. n_clusters_ - 1``.

    n_clusters_ : int
        Number of clusters found: the mixture components that hold training
        samples.

    pretrain_epochs_ : int
        The pretraining epochs run (``pretrain_epochs``, or its ``"auto"``
        value).

    cluster_scale_ : float
        The prior scale used (``cluster_scale``, or its ``"auto"`` value). When
        the first E-step split clusters (``split_valley``), it is multiplied by
        ``K before / K after``, so that the prior keeps the split; a
        warm start keeps that factor.

    n_components_ : int
        The truncation used: ``n_components`` (or the number of rows when
        there are fewer), doubled as long as the first E-step used every
        component or had more clusters after splitting.

    n_clusters_history_ : ndarray of shape (n_e_steps,)
        Number of occupied components after each E-step: the first entry after
        pretraining, then one per EM iteration.

    components_ : ndarray of shape (n_clusters_,)
        Indices into ``mixture_``'s components of the clusters, in label order.

    mixture_ : BayesianGaussianMixture
        The Dirichlet-process mixture on the standardised latent means.

    encoder_ : torch.nn.Module
        The network of q(z|x), with its latent standardisation.

    decoder_ : torch.nn.Module
        The network ``z -> x``.

    network_spec_ : NetworkSpec
        The architecture the networks were built with (the input kind and
        sizes), used to rebuild them when the model is loaded.

    history_ : dict of lists
        ``"pretrain_loss"`` and ``"loss"`` (mean loss per epoch),
        ``"n_clusters"`` (occupied clusters after each E-step, the first one
        after pretraining), ``"latent_scale"`` (root mean variance of the
        latent means after each E-step), ``"latent_effective_dim"`` (the
        participation ratio of their covariance spectrum after each E-step:
        ``latent_dim`` when the variance is spread over all directions, 1 when
        it lies along one) and ``"epoch_time"`` (seconds).

    scaling_ : {"global", "feature"} or None
        The input scaling used (``scaling``, or what ``"auto"`` chose).

    n_features_in_ : int
        Number of features seen during :meth:`fit`.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during :meth:`fit`, when ``X`` has string
        feature names.

    See Also
    --------
    ClusterDDPM : Deep clustering with a diffusion model and a given number of clusters.
    sklearn.mixture.BayesianGaussianMixture : The E-step's mixture.

    Notes
    -----
    A Dirichlet-process mixture fitted with scikit-learn's default priors on
    raw features keeps few clusters, because a few wide components explain
    raw features best. Here the latent means are centred and divided by one
    global scale (batch statistics in training; before every E-step, the
    exact statistics of the training set), so the latent space has a fixed
    size and the covariance prior can be set in those units by
    ``cluster_scale``; the standardisation also stops the clustering loss
    from shrinking the whole latent space. The first E-step starts from
    Ward's agglomerative clustering of the codes into ``n_components``
    clusters and the Dirichlet process empties those the data do not
    support. ``spread_weight`` keeps the network steps from folding the
    latent space. :meth:`predict` uses the latent mean ``E[z|x]``, so it is
    deterministic. The user guide ("DeepDPGMMClusterer") gives the
    measurements behind these choices.

    The original paper's full text was not available; the loop follows its
    abstract and its predecessor (Lim, Jiang and Yi, "Deep Clustering With
    Variational Autoencoder", IEEE Signal Processing Letters 27, 2020).

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from skdiffclust import DeepDPGMMClusterer
    >>> X, _ = make_blobs(n_samples=90, centers=3, random_state=0)
    >>> model = DeepDPGMMClusterer(n_components=10, hidden_dims=(32,), latent_dim=2,
    ...                            pretrain_epochs=5, n_iter=2, random_state=0).fit(X)
    >>> model.labels_.shape
    (90,)
    >>> X_new, y_new = model.sample(4)
    >>> X_new.shape
    (4, 2)
    """

    _parameter_constraints = {
        **BaseDeepClusterer._parameter_constraints,
        "n_components": [integers(1)],
        "pretrain_epochs": [integers(0), StrOptions({"auto"})],
        "latent_dim": [integers(1), None],
        "divergence": [StrOptions({"ajs", "kl"})],
        "alpha": [reals(0, 1)],
        "assignment": [StrOptions({"hard", "soft"})],
        "clustering_weight": [reals(0, closed="left")],
        "spread_weight": [reals(0, closed="left")],
        "weight_concentration_prior": [None, reals(0)],
        # Below about sqrt(reg_covar) a prior scale is lost in the covariance
        # regularisation, and its square can underflow.
        "cluster_scale": [reals(1e-3, closed="left"), StrOptions({"auto"})],
        "split_valley": [reals(0, 1, closed="both")],
        "merge_neighbors": [integers(0)],
        "covariance_type": [StrOptions({"diag", "full"})],
        "encoder": [StrOptions({"conv", "residual"})],
        "augmentation": [StrOptions(set(AUGMENTATION_PRESETS)), None],
        "augmentation_strength": [reals(0, closed="left")],
    }

    _network_roles = {"encoder": "encoder", "decoder": "decoder"}
    _e_step_attributes = ("n_components_", "cluster_scale_", "_split_shrink")

    def __init__(
        self,
        n_components=30,
        *,
        latent_dim=None,
        hidden_dims=(512, 256),
        image_shape=None,
        conv_width=32,
        encoder="conv",
        augmentation=None,
        augmentation_strength=1.0,
        divergence="ajs",
        alpha=0.5,
        assignment="hard",
        clustering_weight=1.0,
        spread_weight=1.0,
        weight_concentration_prior=None,
        init_params="ward",
        cluster_scale="auto",
        split_valley=0.6,
        merge_neighbors=0,
        covariance_type="full",
        pretrain_epochs="auto",
        n_iter=30,
        batch_size=128,
        learning_rate=1e-3,
        scaling="auto",
        device="auto",
        random_state=None,
        verbose=0,
        callbacks=None,
        e_step_max_samples=None,
        warm_start=False,
    ):
        self.n_components = n_components
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.image_shape = image_shape
        self.conv_width = conv_width
        self.encoder = encoder
        self.augmentation = augmentation
        self.augmentation_strength = augmentation_strength
        self.divergence = divergence
        self.alpha = alpha
        self.assignment = assignment
        self.clustering_weight = clustering_weight
        self.spread_weight = spread_weight
        self.weight_concentration_prior = weight_concentration_prior
        self.init_params = init_params
        self.cluster_scale = cluster_scale
        self.split_valley = split_valley
        self.merge_neighbors = merge_neighbors
        self.covariance_type = covariance_type
        self.pretrain_epochs = pretrain_epochs
        self.n_iter = n_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.scaling = scaling
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.e_step_max_samples = e_step_max_samples
        self.warm_start = warm_start

    # ------------------------------------------------------------- networks
    def _validate_method_params(self, n_samples, n_features):
        if self.cluster_scale == "auto":
            n_fitted = n_samples
            if self.e_step_max_samples is not None:
                n_fitted = min(n_samples, self.e_step_max_samples)
            scale = auto_cluster_scale(n_fitted)
        else:
            scale = float(self.cluster_scale)
        # A warm start keeps the shrink of the first E-step's split, or its
        # refits would merge the split clusters again.
        self.cluster_scale_ = scale * getattr(self, "_split_shrink", 1.0)

    def _latent_dim(self, n_features):
        if self.latent_dim is None:
            return min(DEFAULT_LATENT_DIM, n_features)
        return int(self.latent_dim)

    def _network_spec(self, n_features):
        spec = super()._network_spec(n_features)
        if spec.image_shape is None:
            return spec
        return dataclasses.replace(spec, encoder=self.encoder)

    def _record_fitted_params(self, n_samples):
        # More components than rows cannot all hold a row: the truncation is
        # capped at the number of rows. A warm start keeps the fitted one,
        # which the first E-step may have grown.
        self.n_components_ = min(int(self.n_components), n_samples)
        self._split_shrink = 1.0
        self._augmentation = TrainingAugmentation.from_preset(
            self.augmentation, self.network_spec_.image_shape, self.augmentation_strength
        )

    def _n_pretrain_epochs(self, n_samples):
        if self.pretrain_epochs == "auto":
            return auto_pretrain_epochs(self._steps_per_epoch(n_samples))
        return self.pretrain_epochs

    def _build_networks(self, spec):
        networks = super()._build_networks(spec)
        networks["encoder"] = StandardizedGaussianEncoder(networks["encoder"], spec.latent_dim)
        return networks

    def _collapse_advice(self):
        return "Lower clustering_weight or learning_rate, or use fewer n_iter."

    def _fit_e_step_mixture(self, mixture, Z, max_iter, rows=None):
        mixture = super()._fit_e_step_mixture(mixture, Z, max_iter, rows)
        if max_iter is not None:
            return mixture  # warm refits keep the truncation
        # The first E-step: while every component holds codes, the truncation
        # may be what limits the count, so double it and fit again.
        Z_fit = Z if rows is None else Z[rows]
        while len(occupied_components(mixture, Z_fit)) == mixture.n_components and (
            2 * mixture.n_components * MIN_ROWS_PER_COMPONENT <= len(Z_fit)
        ):
            self.n_components_ = 2 * mixture.n_components
            mixture = make_mixture(random_state=mixture.random_state, **self._mixture_params())
            mixture = super()._fit_e_step_mixture(mixture, Z, None, rows)
        return self._revise_first_partition(mixture, Z_fit)

    def _revise_first_partition(self, mixture, Z):
        """The first E-step's mixture, refitted to its clusters once merged groups
        are split (``split_valley``) and connected ones merged (``merge_neighbors``)."""
        labels = np.unique(mixture.predict(Z), return_inverse=True)[1]
        revised = labels
        if self.split_valley > 0:
            revised = self._split_merged_clusters(Z, revised, mixture.random_state)
        if self.merge_neighbors > 0:
            revised = merge_clusters(Z, revised, n_neighbors=self.merge_neighbors)
        if np.array_equal(revised, labels):
            return mixture
        mixture = make_mixture(random_state=mixture.random_state, **self._mixture_params())
        return refit_from_partition(mixture, Z, revised, max_iter=1)

    def _split_merged_clusters(self, Z, labels, random_state):
        """``labels`` with the clusters whose codes hold two separated groups split."""
        split = split_clusters(
            Z,
            labels,
            max_valley_ratio=self.split_valley,
            min_rows=2 * MIN_ROWS_PER_COMPONENT,
            random_state=check_random_state(random_state),
        )
        n_clusters, n_merged = split.max() + 1, labels.max() + 1
        if n_clusters > n_merged:
            # The prior that merged the groups would merge them again at the
            # next E-step, so its scale shrinks with the count.
            shrink = (n_merged / n_clusters) ** SPLIT_SHRINK_POWER
            self._split_shrink *= shrink
            self.cluster_scale_ *= shrink
            # The split partition must leave the truncation room to spare, or
            # the fit would look as if the truncation limited the count.
            while self.n_components_ <= n_clusters:
                self.n_components_ *= 2
        return split

    def _check_result(self):
        history = [int(k) for k in self.n_clusters_history_]
        if self.n_clusters_ == 1 and self.n_components_ > 1:
            warnings.warn(
                "DeepDPGMMClusterer kept a single cluster (clusters after each E-step: "
                f"{history}). If the data hold several groups, lower cluster_scale (the "
                f"value used was {self.cluster_scale_:.3g}) or clustering_weight. If only "
                "a few of the features separate the groups, select them (or reduce the "
                "dimension) first: the code follows what most features vary in.",
                ConvergenceWarning,
                stacklevel=3,
            )
        elif self.n_clusters_ == self.n_components_ and self.n_components_ > 1:
            warnings.warn(
                f"DeepDPGMMClusterer used all n_components={self.n_components_} components "
                "of its truncated Dirichlet process, so the data may hold more clusters: "
                "raise n_components (or cluster_scale, to merge more).",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _mixture_params(self):
        concentration = self.weight_concentration_prior
        n_components = getattr(self, "n_components_", self.n_components)
        if concentration is None:
            concentration = 1.0 / n_components
        # scikit-learn's diagonal covariance estimate is
        # (covariance_prior + n_k S_k) / (degrees_of_freedom_prior + n_k), so this
        # prior acts as latent_dim pseudo-samples of variance cluster_scale**2.
        scale = getattr(self, "cluster_scale_", None)
        if scale is None:  # before fit, only the structure of the parameters matters
            scale = AUTO_SCALE if self.cluster_scale == "auto" else self.cluster_scale
        spec = getattr(self, "network_spec_", None)
        # Before fit, a code of the default size stands in for the input's.
        latent_dim = self._latent_dim(DEFAULT_LATENT_DIM) if spec is None else spec.latent_dim
        prior_variance = latent_dim * scale**2
        if self.covariance_type == "diag":
            covariance_prior = np.full(latent_dim, prior_variance)
        else:
            covariance_prior = prior_variance * np.eye(latent_dim)
        return {
            "n_components": n_components,
            "covariance_type": self.covariance_type,
            "weight_concentration_prior_type": "dirichlet_process",
            "weight_concentration_prior": concentration,
            "init_params": self.init_params,
            "covariance_prior": covariance_prior,
            "degrees_of_freedom_prior": float(latent_dim),
        }

    def _e_step_latents(self, Xs):
        # The running averages of the latent standardisation lag behind an
        # encoder that moved during the epoch: the E-step would see codes of
        # the wrong size against the prior (on 6 blobs this merged two pairs of
        # them). Set them to the exact statistics of the training set first,
        # then standardise the same raw means (one encoder pass).
        encoder = self.encoder_
        raw_means = torch.as_tensor(
            self._gather_codes(self._encode_mean(Xs, encode=encoder.encoder)),
            dtype=torch.float32,
        )
        encoder.set_statistics(raw_means.to(Xs.device))
        with torch.inference_mode():
            latents = encoder.standardize(raw_means.to(Xs.device))
        return latents.cpu().numpy().astype(np.float64)

    # --------------------------------------------------------------- losses
    def _reconstruction_loss(self, x, z):
        """Squared error summed over features, batch mean."""
        return torch.sum((self.decoder_(z) - x.flatten(1)) ** 2, dim=1).mean()

    def _pretrain_loss(self, x):
        mean, _ = self._encode(self._augment(x))
        return self._reconstruction_loss(x, mean)

    def _network_loss(self, x, mixture):
        view = self._augment(x)
        mean, log_var = self._encode(view)
        var = torch.exp(log_var)
        z = reparameterize(mean, log_var)
        divergences = component_divergence(
            mean, var, mixture, divergence=self.divergence, alpha=self.alpha
        )
        target = mean.detach()
        if view is not x:
            # As in DEC-DA, the component is chosen from the clean image's code.
            with torch.no_grad():
                target, _ = self._encode(x)
        log_joint = mixture_log_joint(target, mixture)
        if self.assignment == "hard":
            clustering = divergences.gather(1, log_joint.argmax(dim=1, keepdim=True))
        else:
            clustering = torch.sum(torch.softmax(log_joint, dim=1) * divergences, dim=1)
        loss = self._reconstruction_loss(x, z) + self.clustering_weight * clustering.mean()
        if self.spread_weight > 0:
            loss = loss + self.spread_weight * latent_spread_penalty(mean)
        return loss

    # ---------------------------------------------------------- attributes
    @property
    def n_clusters_history_(self):
        check_is_fitted(self, "mixture_")
        return np.asarray(self.history_["n_clusters"], dtype=int)

    # ------------------------------------------------------------- sampling
    def sample(self, n_samples=1, cluster=None):
        """Generate samples: a code from a cluster's Gaussian, then the decoder.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to generate.
        cluster : int, default=None
            Generate from this cluster only (a label of :meth:`predict`);
            None draws clusters by their mixture weights.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Generated samples, in the units of the training data.
        y : ndarray of shape (n_samples,)
            Cluster of each sample, grouped as in
            :meth:`sklearn.mixture.GaussianMixture.sample`.
        """
        check_is_fitted(self, "mixture_")
        return self._generate(n_samples, cluster, self.decoder_)
