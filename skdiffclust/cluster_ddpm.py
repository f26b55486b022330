"""ClusterDDPM: EM clustering with a conditional denoising diffusion model."""

import copy
import dataclasses
import hashlib
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Hidden, StrOptions
from sklearn.utils.validation import check_is_fitted, check_random_state

from . import distributed as _distributed
from ._base import BaseDeepClusterer
from ._mixture import (
    GIVEN_K_INIT_PARAMS,
    TorchMixture,
    check_umap_installed,
    refit_from_partition,
    umap_labels,
)
from ._param_validation import integers, reals
from ._threads import limited_torch_threads
from .augmentation import AUGMENTATION_PRESETS, TrainingAugmentation
from .diffusion import (
    SAMPLERS,
    NoiseSchedule,
    reverse_diffusion,
    stratified_timesteps,
    variational_bound,
)
from .losses import mixture_kl, reparameterize

#: Number of features of the authors' MNIST images, the reference for ``kl_weight="auto"``.
_REFERENCE_N_FEATURES = 784
_REFERENCE_KL_WEIGHT = 0.1

#: ``timestep_skew="auto"`` is this skew at this number of features (digits),
#: growing with the square root of the number of features.
_REFERENCE_SKEW = 3.0
_REFERENCE_SKEW_N_FEATURES = 64

#: Variational iterations of every E-step's refit to the UMAP partition: one
#: fits the components' shapes to it on the current codes; more move towards
#: the likeliest mixture of the codes, which cuts across it.
_UMAP_E_STEP_MAX_ITER = 1

#: Starts that partition rows by a Gaussian mixture on a UMAP embedding, kept
#: for the whole fit: of the pretrained codes, or of the scaled input.
_UMAP_STARTS = ("umap", "umap-input")

#: Denoiser rows per forward pass of ``score_samples`` (each sample takes one
#: row per sampled timestep), and input values per pass, for large images.
_SCORE_PASS_ROWS = 8192
_SCORE_PASS_VALUES = 2**21


def _row_noise(Xs, seed, latent_dim, n_steps, n_passes):
    """The Monte Carlo noise of ``score_samples`` for each row of ``Xs``.

    Each row's generator is seeded from ``seed`` and the row's values, so a
    row's noise (and score) depends neither on the other rows of the batch nor
    on their order, as scikit-learn's subset and order invariance require.

    Returns
    -------
    latent_noise : ndarray of shape (n, latent_dim)
    uniforms : ndarray of shape (n, n_steps)
    noise : ndarray of shape (n, n_passes, n_features)
    """
    n, n_features = Xs.shape
    latent_noise = np.empty((n, latent_dim), dtype=np.float32)
    uniforms = np.empty((n, n_steps), dtype=np.float32)
    noise = np.empty((n, n_passes, n_features), dtype=np.float32)
    for i, row in enumerate(Xs):
        # + 0 makes -0.0 and 0.0 the same bytes.
        digest = hashlib.blake2b((row + np.float32(0)).tobytes(), digest_size=8).digest()
        rng = np.random.default_rng([seed, int.from_bytes(digest, "little")])
        latent_noise[i] = rng.standard_normal(latent_dim)
        uniforms[i] = rng.random(n_steps)
        noise[i] = rng.standard_normal((n_passes, n_features))
    return latent_noise, uniforms, noise


class ClusterDDPM(BaseDeepClusterer):
    """Clustering with a conditional denoising diffusion model (ClusterDDPM).

    An encoder maps each sample to a Gaussian q(z|x) on a latent code; a
    denoising diffusion model eps(x_t, z, t/T) learns to remove noise from
    ``x`` given that code; a Gaussian mixture on the codes is the clustering.
    After pretraining on the denoising loss, the fit alternates an M-step (one
    epoch of the denoising loss plus ``kl_weight`` times the KL from q(z, c|x)
    to the fixed mixture, as in VaDE) and an E-step (the mixture, a
    :class:`~sklearn.mixture.BayesianGaussianMixture`, refitted on the latent
    means, warm-started).

    Read more in the user guide and in Yan, Liu and Zhang, "ClusterDDPM: An EM
    clustering framework with Denoising Diffusion Probabilistic Models",
    Information Sciences 720:122518, 2025 (arXiv:2312.08029).

    Parameters
    ----------
    n_clusters : int, default=8
        Number of mixture components.

    latent_dim : int, default=16
        Size of the latent code ``z``.

    hidden_dims : tuple of int, default=(512, 512)
        Widths of the MLP encoder's hidden layers; the MLP denoiser has one
        residual block per entry, of width ``hidden_dims[0]``. With
        ``image_shape``, only the last entry is used, as the width of the
        dense layer between the encoder's convolutions and the latent heads.

    image_shape : tuple of 3 int, default=None
        ``(C, H, W)``: treat each row of ``X`` as a flattened image and use the
        convolutional encoder and the conditional U-Net denoiser. Any ``H`` and
        ``W`` work (inputs are padded to a multiple of 4). One entry may be -1,
        inferred from the number of features as in :func:`numpy.reshape`.

    conv_width : int, default=32
        Channels of the first convolution level of the encoder and of the
        U-Net (the authors' ``n_feat``, 64 in their code); a multiple of 8.
        Used only with ``image_shape``. Wider networks fit images better and
        train more slowly (about quadratically in the width).

    unet_width : int, default="deprecated"
        Former name of ``conv_width``.

        .. deprecated:: 0.2
            Use ``conv_width``; ``unet_width`` will be removed in 0.4.

    encoder : {"conv", "residual"}, default="conv"
        The image encoder (used only with ``image_shape``). ``"conv"``: two
        strided 3x3 convolutions and a dense layer of width
        ``hidden_dims[-1]``. ``"residual"``: the authors' encoder, residual
        convolution blocks at full resolution, two pooling levels and global
        average pooling, of width ``conv_width``; it is 10 to 50 times slower
        per epoch. Use it to reproduce the authors' setting.

    denoiser : {"unet", "mlp"}, default="unet"
        The image denoiser (used only with ``image_shape``). ``"unet"``: the
        conditional U-Net of the authors, of width ``conv_width``. ``"mlp"``:
        the vector denoiser (residual blocks of width ``hidden_dims[0]``, one
        per entry of ``hidden_dims``) on the flattened image; several times
        faster, which buys more epochs in a time budget: use it for images on
        a CPU. The user guide compares the two.

    augmentation : {"affine", "shift_rotate"}, default=None
        Random image augmentation during training (only with
        ``image_shape``): the encoder sees a randomly transformed view of each
        image while the denoiser learns to denoise the clean image, in
        pretraining and in the M-steps, so the code must keep what survives
        small shifts, rotations (and, for ``"affine"``, scalings and shears)
        and can drop the pose and slant that otherwise dominate it. The
        E-step, :meth:`predict`, :meth:`transform` and :meth:`score_samples`
        use the clean images. ``"affine"``: shifts up to 10% of the size,
        rotations and shears up to 10 degrees, scalings by 0.9 to 1.1;
        ``"shift_rotate"``: the shifts and rotations only. None (the authors'
        setting) trains on the clean images. Use it for images of objects
        whose class does not change under these transforms (digits, letters,
        most photographs; not data in which position or orientation is the
        class). See :mod:`skdiffclust.augmentation`.

    augmentation_strength : float, default=1.0
        Factor on all the ranges of ``augmentation``; 0 turns it off exactly.
        Lower it for small or tightly cropped images, where a shift of 10%
        moves the object out of its frame.

    n_timesteps : int, default=400
        Number of diffusion steps ``T`` of the linear schedule from 1e-4 to 0.02.

    kl_weight : float or "auto", default="auto"
        Weight of the KL term against the denoising loss, which is summed over
        features. ``"auto"`` is ``0.1 * n_features / 784``: the authors' 0.1 on
        MNIST, rescaled so the balance does not depend on the data dimension.

    timestep_skew : float or "auto", default="auto"
        Training timesteps are ``ceil(T u^(1 / timestep_skew))`` with ``u``
        uniform. 1 is the uniform sampling of the authors' code; larger values
        favour noisy inputs, where the denoiser must rely on ``z``, which makes
        the latent code more informative. The more features, the more a noisy
        input still tells about its clean version, so the more skew is needed:
        ``"auto"`` is ``max(1, 3 sqrt(n_features / 64))``, 3 on the 64 features
        of digits and 10.5 on 28x28 images. Set 1 for the authors' setting;
        raise it when the codes carry too little of the data (the clusters
        then follow noise). The user guide gives the measurements behind
        ``"auto"``.

    condition_dropout : float, default=0.1
        Probability of zeroing the whole code ``z`` in a training step
        (classifier-free guidance dropout), enabling ``guidance`` in
        :meth:`sample`.

    covariance_type : {"diag", "full"}, default="full"
        Covariance of the mixture components. The authors' is diagonal; full
        covariances follow the elongated clusters of the latent space. Use
        ``"diag"`` for the authors' setting or with a large ``latent_dim``.

    weight_concentration_prior_type : {"dirichlet_distribution", \
            "dirichlet_process"}, default="dirichlet_distribution"
        Prior on the mixture weights of the E-step, see
        :class:`~sklearn.mixture.BayesianGaussianMixture`.

    weight_concentration_prior : float, default=None
        Concentration of the weight prior; None means ``1 / n_clusters``.

    init_params : {"umap-input", "umap", "ward", "kmeans", "k-means++", \
            "random", "random_from_data"}, default="umap-input"
        How the first E-step's mixture is initialised. ``"umap-input"``
        partitions the rows by a Gaussian mixture on a UMAP embedding of
        their scaled input (``n_clusters`` dimensions, ``min_dist=0``, as in
        N2D; the likeliest of 10 starts), and keeps that partition for the
        whole fit: every E-step fits each component to its rows of it in the
        code space, with a single variational iteration on the current codes,
        so the components follow the codes as training moves them but the
        partition cannot drift to a likelier Gaussian one that cuts across
        the classes. UMAP follows classes that lie on curved, non-Gaussian
        manifolds; its first call in a process compiles numba's code (see the
        user guide for the cost). ``"umap"`` embeds the pretrained latent
        means instead of the input: choose it when training makes the codes
        separate the classes better than the input does, as long pretraining
        with ``augmentation`` does on images.
        ``"ward"`` starts from Ward's agglomerative clustering of the latent
        means (on a random subset of 5,000 of them for larger data) and lets
        every E-step refit the mixture freely: choose it when the classes are
        compact Gaussian groups, or to avoid UMAP's cost. The others are those
        of :class:`~sklearn.mixture.BayesianGaussianMixture`. With ``"umap"``
        the KL term only shapes the codes, so on images pair it with a
        ``kl_weight`` below ``"auto"`` and more ``pretrain_epochs``: a large
        weight shrinks the codes' spread every EM iteration, and the accuracy
        with it (the user guide gives the settings measured on images).

    pretrain_epochs : int, default=100
        Epochs of the plain denoising loss before the first E-step. They take
        most of the fit time; fewer give codes that cluster worse, more help
        on large or hard data.

    n_iter : int, default=30
        EM iterations, each one epoch of the M-step then an E-step.

    batch_size : int, default=128
        Minibatch size of the network steps.

    learning_rate : float, default=1e-3
        Adam's learning rate during pretraining.

    em_learning_rate : float, default=1e-4
        Adam's learning rate during the EM iterations. Ten times below
        ``learning_rate``: larger steps make the clustering swing from one
        iteration to the next; lower it if ``history_["n_clusters"]`` or the
        labels jump between iterations.

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
        Number of clusters that hold training samples (at most
        ``n_clusters``; a mixture component can empty during training).

    pretrain_epochs_ : int
        The pretraining epochs run (``pretrain_epochs``).

    components_ : ndarray of shape (n_clusters_,)
        Indices into ``mixture_``'s components of the clusters, in label order.

    mixture_ : BayesianGaussianMixture
        The mixture on the latent means.

    encoder_ : torch.nn.Module
        The network of q(z|x).

    denoiser_ : torch.nn.Module
        The conditional noise predictor eps(x_t, z, t/T).

    network_spec_ : NetworkSpec
        The architecture the networks were built with (the input kind and
        sizes), used to rebuild them when the model is loaded.

    n_timesteps_ : int
        The number of diffusion steps the model was trained with, used by
        :meth:`sample` and :meth:`score_samples`.

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
    DeepDPGMMClusterer : Deep clustering that also finds the number of clusters.
    sklearn.mixture.BayesianGaussianMixture : The E-step's mixture.

    Notes
    -----
    :meth:`predict` uses the latent mean ``E[z|x]``, so it is deterministic;
    the authors' code assigns clusters from a sampled ``z``.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from skdiffclust import ClusterDDPM
    >>> X, _ = make_blobs(n_samples=60, centers=3, random_state=0)
    >>> model = ClusterDDPM(n_clusters=3, hidden_dims=(32,), pretrain_epochs=5,
    ...                     n_iter=2, random_state=0).fit(X)
    >>> model.labels_.shape
    (60,)
    >>> X_new, y_new = model.sample(4)
    >>> X_new.shape
    (4, 2)
    """

    _parameter_constraints = {
        **BaseDeepClusterer._parameter_constraints,
        "n_clusters": [integers(1)],
        "unet_width": [
            integers(8),
            Hidden(StrOptions({"deprecated"})),
        ],
        "n_timesteps": [integers(1)],
        "kl_weight": [StrOptions({"auto"}), reals(0, closed="left")],
        "timestep_skew": [StrOptions({"auto"}), reals(0)],
        "condition_dropout": [reals(0, 1, closed="left")],
        "covariance_type": [StrOptions({"diag", "full"})],
        "weight_concentration_prior_type": [
            StrOptions({"dirichlet_distribution", "dirichlet_process"})
        ],
        "weight_concentration_prior": [None, reals(0)],
        "em_learning_rate": [reals(0)],
        "encoder": [StrOptions({"conv", "residual"})],
        "denoiser": [StrOptions({"unet", "mlp"})],
        "augmentation": [StrOptions(set(AUGMENTATION_PRESETS)), None],
        "augmentation_strength": [reals(0, closed="left")],
        "init_params": [StrOptions({*GIVEN_K_INIT_PARAMS, *_UMAP_STARTS})],
    }

    _network_roles = {"encoder": "encoder", "denoiser": "denoiser"}
    _keep_all_components = True

    #: The UMAP partition that the E-steps keep belongs to one fit's data.
    _fit_state_attributes = (*BaseDeepClusterer._fit_state_attributes, "_umap_partition")

    def __init__(
        self,
        n_clusters=8,
        *,
        latent_dim=16,
        hidden_dims=(512, 512),
        image_shape=None,
        conv_width=32,
        unet_width="deprecated",
        encoder="conv",
        denoiser="unet",
        augmentation=None,
        augmentation_strength=1.0,
        n_timesteps=400,
        kl_weight="auto",
        timestep_skew="auto",
        condition_dropout=0.1,
        covariance_type="full",
        weight_concentration_prior_type="dirichlet_distribution",
        weight_concentration_prior=None,
        init_params="umap-input",
        pretrain_epochs=100,
        n_iter=30,
        batch_size=128,
        learning_rate=1e-3,
        em_learning_rate=1e-4,
        scaling="auto",
        device="auto",
        random_state=None,
        verbose=0,
        callbacks=None,
        e_step_max_samples=None,
        warm_start=False,
    ):
        self.n_clusters = n_clusters
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.image_shape = image_shape
        self.conv_width = conv_width
        self.unet_width = unet_width
        self.encoder = encoder
        self.denoiser = denoiser
        self.augmentation = augmentation
        self.augmentation_strength = augmentation_strength
        self.n_timesteps = n_timesteps
        self.kl_weight = kl_weight
        self.timestep_skew = timestep_skew
        self.condition_dropout = condition_dropout
        self.covariance_type = covariance_type
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.init_params = init_params
        self.pretrain_epochs = pretrain_epochs
        self.n_iter = n_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.em_learning_rate = em_learning_rate
        self.scaling = scaling
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.e_step_max_samples = e_step_max_samples
        self.warm_start = warm_start

    # ------------------------------------------------------------- networks
    def _validate_method_params(self, n_samples, n_features):
        if n_samples < self.n_clusters:
            raise ValueError(f"n_samples={n_samples} should be >= n_clusters={self.n_clusters}.")
        if self.init_params in _UMAP_STARTS:
            check_umap_installed()  # before training, not after pretraining
        if self.unet_width != "deprecated":
            warnings.warn(
                "unet_width was renamed conv_width in 0.2 and will be removed in 0.4; "
                "use conv_width.",
                FutureWarning,
                stacklevel=5,
            )
        if self.image_shape is not None and self.denoiser == "unet" and self._conv_width() % 8:
            # The U-Net's group normalisation uses 8 groups.
            raise ValueError(f"conv_width must be a multiple of 8, got {self._conv_width()}.")

    def _conv_width(self):
        return self.conv_width if self.unet_width == "deprecated" else self.unet_width

    def _network_spec(self, n_features):
        spec = super()._network_spec(n_features)
        if spec.image_shape is None:
            return spec
        return dataclasses.replace(spec, encoder=self.encoder, denoiser=self.denoiser)

    def _record_fitted_params(self, n_samples):
        self.n_timesteps_ = int(self.n_timesteps)
        self._augmentation = TrainingAugmentation.from_preset(
            self.augmentation, self.network_spec_.image_shape, self.augmentation_strength
        )

    def _mixture_params(self):
        return {
            "n_components": self.n_clusters,
            "covariance_type": self.covariance_type,
            "weight_concentration_prior_type": self.weight_concentration_prior_type,
            "weight_concentration_prior": self.weight_concentration_prior,
            # The mixture never starts itself from the input: its fresh fits
            # see only codes.
            "init_params": "umap" if self.init_params == "umap-input" else self.init_params,
        }

    def _e_step(self, mixture, Xs, history, random_state, max_iter, iteration, callbacks):
        ctx = getattr(self, "_dist", None)
        if self.init_params == "umap-input" and max_iter is None:
            # The first E-step partitions the rows by their scaled input, on
            # the rank that fits the mixture.
            rows = Xs.flatten(1).cpu().numpy()
            self._start_inputs = rows if ctx is None else _distributed.gather_rows(rows, ctx, dst=0)
        new_partition = self.init_params in _UMAP_STARTS and "_umap_partition" not in self.__dict__
        try:
            mixture = super()._e_step(
                mixture, Xs, history, random_state, max_iter, iteration, callbacks
            )
        finally:
            self.__dict__.pop("_start_inputs", None)
        if new_partition and ctx is not None:
            # Every rank's network step reads the partition that rank 0 keeps.
            self._umap_partition = _distributed.broadcast_object(
                getattr(self, "_umap_partition", None), ctx
            )
        return mixture

    def _kept_partition(self):
        return getattr(self, "_umap_partition", None)

    def _fit_e_step_mixture(self, mixture, Z, max_iter, rows=None):
        if self.init_params not in _UMAP_STARTS:
            return super()._fit_e_step_mixture(mixture, Z, max_iter, rows)
        Z_fit = Z if rows is None else Z[rows]
        if max_iter is None:
            # The first E-step: UMAP's partition, kept for the whole fit (for
            # rows outside a subsample, the mixture's posterior on it).
            random_state = check_random_state(mixture.random_state)
            points = Z if self.init_params == "umap" else self._start_inputs
            points = points if rows is None else points[rows]
            labels = umap_labels(points, mixture.n_components, random_state)
            mixture = refit_from_partition(mixture, Z_fit, labels, _UMAP_E_STEP_MAX_ITER)
            partition = labels
            if rows is not None:
                partition = mixture.predict(Z)
                partition[rows] = labels
            self._umap_partition = partition
            return mixture
        if getattr(self, "_umap_partition", None) is None:
            # A warm-started fit keeps the fitted mixture's partition of its data.
            self._umap_partition = mixture.predict(Z)
        partition = self._umap_partition
        # Each component is refitted to its rows of the kept partition: free
        # refits drift, E-step after E-step, to a likelier partition of the
        # codes that cuts across UMAP's.
        return refit_from_partition(
            mixture,
            Z_fit,
            partition if rows is None else partition[rows],
            _UMAP_E_STEP_MAX_ITER,
        )

    def _schedule(self, device):
        """The noise schedule of the fitted model on ``device`` (cached)."""
        # Models pickled by version 0.1.0 did not record n_timesteps_.
        n_timesteps = getattr(self, "n_timesteps_", self.n_timesteps)
        schedule = getattr(self, "_noise_schedule", None)
        if schedule is None or schedule.n_timesteps != n_timesteps or schedule.device != device:
            schedule = self._noise_schedule = NoiseSchedule(n_timesteps, device)
        return schedule

    def _learning_rate_param(self, stage):
        return "em_learning_rate" if stage == "EM" else "learning_rate"

    def _collapse_advice(self):
        return "Lower kl_weight or em_learning_rate, or use fewer n_iter."

    def _effective_kl_weight(self):
        if self.kl_weight == "auto":
            return _REFERENCE_KL_WEIGHT * self.n_features_in_ / _REFERENCE_N_FEATURES
        return self.kl_weight

    def _effective_timestep_skew(self):
        if self.timestep_skew == "auto":
            ratio = self.n_features_in_ / _REFERENCE_SKEW_N_FEATURES
            return max(1.0, _REFERENCE_SKEW * ratio**0.5)
        return self.timestep_skew

    # --------------------------------------------------------------- losses
    def _denoising_loss(self, x, z):
        """Noise-prediction squared error summed over features, batch mean."""
        schedule = self._schedule(x.device)
        n = x.shape[0]
        t = schedule.sample_timesteps(n, self._effective_timestep_skew(), x.device)
        noise = torch.randn_like(x)
        x_t = schedule.add_noise(x, t, noise)
        if self.condition_dropout > 0:
            keep = (torch.rand(n, 1, device=x.device) >= self.condition_dropout).to(z.dtype)
            z = z * keep
        predicted = self.denoiser_(x_t, z, (t.to(x.dtype) / schedule.n_timesteps)[:, None])
        return torch.sum((predicted - noise) ** 2, dim=1).mean()

    def _pretrain_loss(self, x):
        mean, log_var = self._encode(self._augment(x))
        return self._denoising_loss(x, reparameterize(mean, log_var))

    def _network_loss(self, x, mixture, components=None):
        # One encoder pass serves both terms (the authors' code makes two).
        mean, log_var = self._encode(self._augment(x))
        z = reparameterize(mean, log_var)
        kl = mixture_kl(z, mean, log_var, mixture, components).mean()
        return self._denoising_loss(x, z) + self._effective_kl_weight() * kl

    # --------------------------------------------------------------- scoring
    #: Per sample, the Monte Carlo estimate of :meth:`score_samples` takes this
    #: many timesteps in ``2..T`` and this many draws of the last step ``L_0``.
    _score_n_timesteps = 50
    _score_n_decoder_draws = 10

    def score_samples(self, X):
        """Evidence lower bound (ELBO) of ``log p(x)`` for each sample.

        The model's log-density of ``x`` is bounded below by::

            E_q(z|x)[log p(x|z)] - KL(q(z, c|x) || p(z, c))

        where ``p(z, c)`` is the fitted mixture (the KL term of the fit, at
        full weight), and ``-log p(x|z)`` is itself bounded by the variational
        bound of the diffusion model (Ho et al. 2020, eq. 5):
        ``L_T + sum_{t=2}^T L_{t-1} + L_0``, with the reverse steps of
        :meth:`sample`'s ancestral sampler (variance ``beta_t``) and a
        Gaussian, not discretised, last step of variance ``beta_1``. The data
        is ``x_0`` and ``t = 1`` its first noisy level.

        The value is a stochastic estimate whose expectation is the bound: per
        sample, one code ``z ~ q(z|x)``, 50 timesteps in ``2..T`` drawn by
        stratified sampling (every timestep once when ``n_timesteps <= 51``)
        and 10 draws of the last step, i.e. 60 denoiser passes. On digits its
        standard deviation is about 6 nats per sample. It is deterministic:
        each sample's noise is seeded from ``random_state`` (a fixed seed when
        it is not an int) and from the sample's values, so a score does not
        depend on the other rows of ``X`` nor on their order.

        Scores are in nats, as log-densities in the units of ``X``: the
        log-Jacobian of the input scaling (see ``scaling``) is included, so
        scores of models fitted with different scalings, or on rescaled data,
        are comparable (``X`` times 10 scores ``n_features * log(10)`` lower).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The lower bound of ``log p(x)`` of each sample; higher is more
            likely.
        """
        check_is_fitted(self, "mixture_")
        X = self._validate_X(X, reset=False)
        device = self._inference_device()
        schedule = self._schedule(device)
        mixture = TorchMixture.from_sklearn(self.mixture_, device, dtype=torch.float64)
        n_steps = min(self._score_n_timesteps, schedule.n_timesteps - 1)
        n_passes = n_steps + self._score_n_decoder_draws
        pass_rows = min(_SCORE_PASS_ROWS, _SCORE_PASS_VALUES // X.shape[1])
        chunk = max(1, pass_rows // n_passes)
        seed = self.random_state if isinstance(self.random_state, Integral) else 0
        scores = []
        with torch.inference_mode(), limited_torch_threads():
            for net in self._networks().values():
                net.eval()
            # The KL term to narrow mixture components magnifies the float32
            # rounding of the code, which depends on the batch size (BLAS
            # kernels): a float64 encoder makes a row score the same alone as
            # in any batch.
            encoder = copy.deepcopy(self.encoder_).double()
            for start in range(0, X.shape[0], chunk):
                Xs = self._scale(X[start : start + chunk])
                noise = _row_noise(Xs, seed, self.network_spec_.latent_dim, n_steps, n_passes)
                scores.append(self._elbo(Xs, encoder, noise, mixture, schedule))
        return np.concatenate(scores) + self._scaling_log_jacobian()

    def _elbo(self, Xs, encoder, noise, mixture, schedule):
        """ELBO of scaled rows (float32 numpy), as a log-density of the scaled
        data, with the float64 ``encoder`` and the noise of :func:`_row_noise`."""
        device = schedule.device
        latent_noise, uniforms, noise = (torch.from_numpy(a).to(device) for a in noise)
        x = torch.from_numpy(Xs).to(device)
        mean, log_var = encoder(x.double())
        log_var = log_var.clamp(-15.0, 10.0)  # as in training (see ``_encode``)
        z = mean + torch.exp(0.5 * log_var) * latent_noise
        kl = mixture_kl(z, mean, log_var, mixture)
        t, weights = stratified_timesteps(uniforms, schedule.n_timesteps)
        nll = variational_bound(self.denoiser_, x, z.float(), schedule, t, weights, noise)
        return (-nll - kl).cpu().numpy()

    def score(self, X, y=None):
        """Mean evidence lower bound of ``log p(x)`` over the samples.

        See :meth:`score_samples`; higher is better, so this is the score
        :class:`~sklearn.model_selection.GridSearchCV` maximises when
        ``scoring=None``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        score : float
            Mean of :meth:`score_samples`, in nats per sample.
        """
        return float(np.mean(self.score_samples(X)))

    # ------------------------------------------------------------- sampling
    def sample(self, n_samples=1, cluster=None, guidance=0.0, n_steps=None, sampler=None):
        """Generate samples: a code from a cluster's Gaussian, then reverse diffusion.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to generate.
        cluster : int, default=None
            Generate from this cluster only (a label of :meth:`predict`);
            None draws clusters by their mixture weights.
        guidance : float, default=0.0
            Classifier-free guidance strength ``w``:
            ``eps = (1 + w) eps(z) - w eps(0)``. Needs ``condition_dropout > 0``
            at training time to be meaningful.
        n_steps : int, default=None
            Number of reverse steps. None visits all the timesteps the model
            was trained with; fewer steps are faster, for a small loss of
            fidelity, and need the DDIM sampler.
        sampler : {"ancestral", "ddim"}, default=None
            The stochastic DDPM reverse process of the paper, or the
            deterministic DDIM one. None means ``"ancestral"`` when ``n_steps``
            is None and ``"ddim"`` otherwise.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Generated samples, in the units of the training data.
        y : ndarray of shape (n_samples,)
            Cluster of each sample, grouped as in
            :meth:`sklearn.mixture.GaussianMixture.sample`.
        """
        check_is_fitted(self, "mixture_")
        if not isinstance(guidance, Real) or not np.isfinite(guidance) or guidance < 0:
            raise ValueError(f"guidance must be a finite non-negative number, got {guidance!r}.")
        if n_steps is not None and (
            not isinstance(n_steps, Integral) or isinstance(n_steps, bool) or n_steps < 1
        ):
            raise ValueError(f"n_steps must be None or a positive integer, got {n_steps!r}.")
        if sampler is None:
            sampler = "ancestral" if n_steps is None else "ddim"
        elif sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(SAMPLERS)} or None, got {sampler!r}.")
        schedule = self._schedule(self._inference_device())
        shape = (self.n_features_in_,)

        def generate(z):
            return reverse_diffusion(self.denoiser_, z, schedule, shape, sampler, n_steps, guidance)

        return self._generate(n_samples, cluster, generate)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_noise_schedule", None)
        return state
