"""Shared base of the deep clusterers.

:class:`BaseDeepClusterer` holds everything the two methods have in common, in
the way :class:`sklearn.mixture._base.BaseMixture` holds the EM loop for
scikit-learn's mixtures: input validation and scaling, device selection, local
seeding, the pretraining -> (network step, E-step) loop with its history,
checkpoints that survive divergence and interruption, batched inference,
prediction through the latent mixture, latent sampling, and pickling.
A subclass adds its networks and its two losses.
"""

import copy
import io
import time
import warnings
from abc import abstractmethod
from collections import namedtuple
from contextlib import contextmanager
from numbers import Integral

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import assert_all_finite, check_is_fitted, validate_data

from . import distributed as _distributed
from ._mixture import (
    INIT_PARAMS,
    TorchMixture,
    fit_mixture,
    make_mixture,
    occupied_components,
    restricted_log_proba_torch,
)
from ._param_validation import check_int_tuple, integers, reals, resolve_image_shape
from ._threads import limited_torch_threads
from .callbacks import Callback, PrintProgress
from .metrics import effective_dimension
from .nn import NetworkSpec, build_network

#: Rows per forward pass at inference: large enough to keep the cores busy,
#: small enough that memory stays bounded for any number of rows.
INFERENCE_BATCH_SIZE = 4096

#: Fewest rows per forward pass at inference (see ``_encode_mean``).
MIN_INFERENCE_ROWS = 64

#: Samples generated per batch by ``sample``.
SAMPLE_BATCH_SIZE = 1024

#: Rows per chunk of the numpy preprocessing (scaling statistics, scaling).
_CHUNK_ROWS = 65536

#: Values per block of ``_scale`` (1 MB of float64).
_SCALE_BLOCK_VALUES = 2**17

#: dtypes that inference reads as they are; any other is converted to float64.
#: Integers convert to float64 exactly inside the scaling.
_INFERENCE_DTYPES = [np.float64, np.float32, np.uint8, np.int8, np.int16, np.int32, np.int64]


class _Objective(torch.nn.Module):
    """The networks of a fit as one module whose forward pass is a loss.

    In DistributedDataParallel, a whole training loss is then one forward
    pass, whichever networks it runs and however often: one gradient
    all-reduce per step for all of them.
    """

    def __init__(self, networks):
        super().__init__()
        self.networks = torch.nn.ModuleDict(networks)

    def forward(self, loss_fn, x, rows):
        return loss_fn(x, rows)


def _data_parallel_objective(networks, ctx):
    """The DDP-wrapped :class:`_Objective` of ``networks`` under
    torch.distributed with several ranks, else None.

    Wrapping broadcasts rank 0's weights, so every rank starts alike. Some
    parameters may go without gradient in a step (the encoder's log-variance
    head in pretraining). Buffers updated from synchronized batch statistics
    agree on every rank; batch normalisation's do not, and are sent from rank
    0 before every forward pass.
    """
    if ctx is None or ctx.world_size == 1:
        return None
    objective = _Objective(networks)
    return _distributed.wrap_ddp(
        objective,
        ctx,
        count_bytes=True,
        find_unused_parameters=True,
        broadcast_buffers=_has_batch_norm(objective),
    )


def _has_batch_norm(module):
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())


def _tensors_to_bytes(obj):
    """``torch.save`` of ``obj`` with its tensors on the CPU (for the safe loader)."""
    buffer = io.BytesIO()
    torch.save(_to_cpu(obj), buffer)
    return buffer.getvalue()


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {key: _to_cpu(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(value) for value in obj)
    return obj


def _gradients_finite(optimizer):
    """Whether every gradient the optimizer holds is finite (one float64 sum
    per tensor, which cannot overflow for float32 gradients)."""
    sums = [
        p.grad.sum(dtype=torch.float64)
        for group in optimizer.param_groups
        for p in group["params"]
        if p.grad is not None
    ]
    return not sums or bool(torch.isfinite(torch.stack(sums).sum()))


def _scale_into(out, X, offset, scale):
    """``out[:] = X * scale - offset * scale``, computed in float64.

    Blocks of about 1 MB through one float64 buffer: full-size float64
    temporaries cost more than the encoder's work at inference. torch rather
    than numpy, so that the cores share the work.
    """
    shifted = torch.from_numpy(offset * scale)
    scale = torch.from_numpy(scale)
    block = max(1, _SCALE_BLOCK_VALUES // max(1, X.shape[1]))
    buffer = torch.empty((min(block, X.shape[0]), X.shape[1]), dtype=torch.float64)
    for start in range(0, X.shape[0], block):
        rows = slice(start, start + block)
        scaled = buffer[: len(X[rows])]
        # X * s - o * s rather than (X - o) * s: the difference of two huge
        # values can overflow.
        torch.mul(X[rows], scale, out=scaled)
        scaled.sub_(shifted)
        out[rows] = scaled


def _read_only_tensor(X):
    """A tensor sharing the memory of array ``X``, which is only read."""
    if any(stride < 0 for stride in X.strides):
        X = np.ascontiguousarray(X)  # torch views cannot step backwards
    with warnings.catch_warnings():
        # A read-only array (a memory map, a broadcast view) is fine to read.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(X)


def _column_mean_std(X):
    """Per-column mean and standard deviation of ``X`` without overflow or
    underflow for any finite values, in chunks of rows (two passes)."""
    magnitude = np.max(np.abs(X), axis=0).astype(np.float64)
    magnitude[magnitude == 0] = 1.0
    n_samples = X.shape[0]
    total = np.zeros(X.shape[1])
    for start in range(0, n_samples, _CHUNK_ROWS):
        total += np.sum(X[start : start + _CHUNK_ROWS] / magnitude, axis=0)
    mean = total / n_samples
    squares = np.zeros(X.shape[1])
    for start in range(0, n_samples, _CHUNK_ROWS):
        squares += np.sum((X[start : start + _CHUNK_ROWS] / magnitude - mean) ** 2, axis=0)
    return mean * magnitude, np.sqrt(squares / n_samples) * magnitude


def resolve_scaling(scaling, X):
    """The scaling ``"auto"`` stands for on ``X``: ``"global"`` for intensities,
    ``"feature"`` otherwise.

    Intensities are non-negative values that are all integers (pixel values
    0..255, counts) or all in [0, 1]: one scale for all features keeps their
    relative contrast. Anything else (StandardScaler output, signed or
    real-valued measurements in mixed units) is standardised per feature, which
    leaves already standardised data as it is. Other values of ``scaling`` are
    returned unchanged.
    """
    if scaling != "auto":
        return scaling
    if np.min(X) < 0:
        return "feature"
    if np.max(X) <= 1:
        return "global"
    integral = all(
        np.all(np.mod(X[start : start + _CHUNK_ROWS], 1) == 0)
        for start in range(0, X.shape[0], _CHUNK_ROWS)
    )
    return "global" if integral else "feature"


def resolve_device(device):
    """Turn the ``device`` parameter into a :class:`torch.device`.

    ``"auto"`` picks CUDA when it is available and the CPU otherwise.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r} is not valid: use 'auto', 'cpu', 'cuda' or 'cuda:N'.")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this "
                "machine; use device='cpu' or device='auto'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
    return resolved


@contextmanager
def local_torch_seed(seed):
    """Seed torch inside the block and restore the global RNG state afterwards.

    Every source of torch randomness (weight initialisation, dropout,
    ``torch.randn``) then depends on ``seed`` only, and the caller's global
    torch RNG is left exactly as it was.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


#: Keys of ``history_``, each a list with one entry per epoch or per E-step.
HISTORY_KEYS = (
    "pretrain_loss",
    "loss",
    "n_clusters",
    "latent_scale",
    "latent_effective_dim",
    "epoch_time",
)

#: How messages name the training stages.
_STAGE_NAMES = {"pretrain": "pretraining epoch", "EM": "EM iteration"}


#: The scaled rows a process trains on and those it encodes for the E-step
#: (the same tensor in one process; each rank's shards under torch.distributed).
_Data = namedtuple("_Data", ["train", "codes"])


def _notify(callbacks, event, estimator, **info):
    """Call ``event`` on every callback."""
    for callback in callbacks:
        getattr(callback, event)(estimator, **info)


class TrainingDivergedError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


class BaseDeepClusterer(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator
):
    """Base class for the deep clusterers; not to be used directly.

    A subclass declares its networks in ``_network_roles`` (attribute name ->
    role of :func:`skdiffclust.nn.build_network`) and implements
    :meth:`_pretrain_loss`, :meth:`_network_loss` and :meth:`_mixture_params`.
    It may override :meth:`_build_networks` (to wrap a network),
    :meth:`_validate_method_params`, :meth:`_latent_dim`, :meth:`_e_step_latents`,
    :meth:`_learning_rate_param` and :meth:`_collapse_advice`.
    """

    _parameter_constraints = {
        "latent_dim": [integers(1)],
        "hidden_dims": ["array-like"],
        "image_shape": ["array-like", None],
        "conv_width": [integers(1)],
        "pretrain_epochs": [integers(0)],
        "n_iter": [integers(0)],
        "batch_size": [integers(2)],
        "learning_rate": [reals(0)],
        "scaling": [StrOptions({"auto", "global", "feature"}), None],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, tuple, None],
        "e_step_max_samples": [integers(1), None],
        "init_params": [StrOptions(set(INIT_PARAMS))],
        "warm_start": ["boolean"],
    }

    #: Fitted network attributes (without the trailing underscore) -> role.
    _network_roles = {}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    @property
    def _network_names(self):
        return tuple(self._network_roles)

    # ------------------------------------------------------------------ hooks
    def _build_networks(self, spec):
        """Return a dict ``name -> nn.Module`` built from the :class:`NetworkSpec`."""
        return {name: build_network(role, spec) for name, role in self._network_roles.items()}

    @abstractmethod
    def _pretrain_loss(self, x):
        """Loss of one pretraining batch (a scalar tensor)."""

    @abstractmethod
    def _network_loss(self, x, mixture):
        """Loss of one network-step batch given the fixed :class:`TorchMixture`.

        An estimator whose E-step keeps a partition (:meth:`_kept_partition`)
        also takes ``components``, the batch's rows' components in it.
        """

    def _kept_partition(self):
        """The component of every training row that the E-step keeps, or None.

        An E-step that keeps a hard partition of the rows makes it the
        network step's ``q(c|x)``; by default the E-step keeps none.
        """
        return None

    def _em_batch_loss(self, mixture, device):
        """The loss of one EM epoch's batch ``x`` of training ``rows``."""
        torch_mixture = TorchMixture.from_sklearn(mixture, device)
        partition = self._kept_partition()
        if partition is None:
            return lambda x, rows: self._network_loss(x, torch_mixture)
        components = torch.as_tensor(partition, dtype=torch.long, device=device)
        return lambda x, rows: self._network_loss(x, torch_mixture, components=components[rows])

    @abstractmethod
    def _mixture_params(self):
        """Keyword arguments of :func:`make_mixture` (but ``random_state``)."""

    def _validate_method_params(self, n_samples, n_features):
        """Checks that need the data or span several parameters; override to extend."""

    def _learning_rate_param(self, stage):
        """Name of the parameter that holds Adam's learning rate in ``stage``
        (``"pretrain"`` or ``"EM"``)."""
        return "learning_rate"

    def _collapse_advice(self):
        """What to change when the latent codes collapse during EM."""
        return "Use fewer n_iter or a lower learning_rate."

    def _conv_width(self):
        """The width of the first convolution level (a hook for deprecated names)."""
        return self.conv_width

    def _check_result(self):
        """Warn about a degenerate fitted state (called at the end of ``fit``)."""

    def _record_fitted_params(self, n_samples):
        """Record, as fitted attributes, the parameters that inference and
        ``warm_start`` fits read (beyond the networks' architecture), when a
        new fit starts on ``n_samples`` rows."""

    def _augment(self, x):
        """The encoder's view of a training batch: an augmented copy when the
        estimator augments (``_augmentation``, set at fit), else ``x`` itself."""
        augmentation = getattr(self, "_augmentation", None)
        return x if augmentation is None else augmentation.view(x)

    def _encode(self, x):
        """``(mean, log_var)`` of q(z|x) for a batch of scaled inputs."""
        mean, log_var = self.encoder_(x)
        # Bounded log-variance keeps exp() finite early in training.
        return mean, log_var.clamp(-15.0, 10.0)

    # ------------------------------------------------------------ validation
    def _validate_X(self, X, reset, fitting=False):
        """``X`` checked as scikit-learn does; at inference, integer arrays are
        kept as they are (scaling reads them exactly) and non-finite values are
        left to :meth:`_scale`, which checks its float32 output once instead of
        its input and output each."""
        X = validate_data(
            self,
            X,
            reset=reset,
            dtype=[np.float64, np.float32] if fitting else _INFERENCE_DTYPES,
            # A batch of one breaks batch normalisation, and one sample
            # cannot be clustered.
            ensure_min_samples=2 if fitting else 1,
            ensure_all_finite=fitting,
            accept_sparse=False,
        )
        if fitting and not np.any(X != X[:1]):
            raise ValueError(
                f"X has {X.shape[0]} samples that are all identical (every feature is "
                "constant): there is nothing to cluster."
            )
        return X

    def _latent_dim(self, n_features):
        """The size of the latent code for ``n_features`` inputs."""
        return int(self.latent_dim)

    def _network_spec(self, n_features):
        """The :class:`NetworkSpec` of the current parameters for ``n_features`` inputs."""
        image_shape = None
        if self.image_shape is not None:
            image_shape = resolve_image_shape(self.image_shape, n_features)
        return NetworkSpec(
            n_features=n_features,
            latent_dim=self._latent_dim(n_features),
            hidden_dims=check_int_tuple(self.hidden_dims, "hidden_dims"),
            image_shape=image_shape,
            conv_width=int(self._conv_width()),
        )

    def _check_callbacks(self):
        callbacks = list(self.callbacks or ())
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    "callbacks must be instances of skdiffclust.callbacks.Callback, got "
                    f"{type(callback).__name__}."
                )
        if self.verbose:
            callbacks.append(PrintProgress())
        return callbacks

    def _check_data_params(self, X, continuing):
        """Validate the parameters against the data; record the architecture
        of a new fit as ``network_spec_``."""
        n_samples, n_features = X.shape
        spec = self._network_spec(n_features)
        if not continuing:
            self.network_spec_ = spec
            self._record_fitted_params(n_samples)
        self._validate_method_params(n_samples, n_features)
        n_components = self._mixture_params()["n_components"]
        if self.e_step_max_samples is not None and self.e_step_max_samples < n_components:
            raise ValueError(
                f"e_step_max_samples={self.e_step_max_samples} should be >= the number of "
                f"mixture components ({n_components})."
            )

    def _fit_scaling(self, X):
        # Offsets and scales are computed on pre-scaled chunks, so that neither
        # huge (1e300) nor tiny (1e-300) values overflow or underflow, and no
        # full-size temporary copy of X is made.
        self.scaling_ = resolve_scaling(self.scaling, X)
        if self.scaling_ == "global":
            low, high = float(np.min(X)), float(np.max(X))
            magnitude = max(abs(low), abs(high)) or 1.0
            span = high / magnitude - low / magnitude
            offset = np.full(X.shape[1], low)
            with np.errstate(over="ignore", divide="ignore"):
                scale = np.full(X.shape[1], 1.0 / magnitude / span if span > 0 else 1.0)
        elif self.scaling_ == "feature":
            offset, std = _column_mean_std(X)
            with np.errstate(over="ignore", divide="ignore"):
                scale = np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 1.0)
        else:
            offset = np.zeros(X.shape[1])
            scale = np.ones(X.shape[1])
        if not np.all(np.isfinite(scale)):
            raise ValueError(
                f"X's values are too small to rescale (their largest magnitude is "
                f"{float(np.max(np.abs(X))):.3g}, near the smallest float64): with "
                f"scaling={self.scaling_!r} the scale factor overflows. Multiply X by a "
                "large constant first."
            )
        self._input_offset = offset
        self._input_scale = scale

    def _scale(self, X):
        """Scaled float32 copy of ``X``; raises if ``X`` has NaN or infinite
        values, or if scaling overflows float32."""
        X_tensor = _read_only_tensor(X)
        Xs = torch.empty(X.shape, dtype=torch.float32)
        with limited_torch_threads():
            if not np.any(self._input_offset) and np.all(self._input_scale == 1):
                # Data already in the range scaling maps to (images in [0, 1],
                # scaling=None): only the conversion to float32 is left.
                Xs.copy_(X_tensor)
            else:
                _scale_into(Xs, X_tensor, self._input_offset, self._input_scale)
        Xs = Xs.numpy()
        if not np.all(np.isfinite(Xs)):
            # NaN or infinity in X itself: scikit-learn's own message.
            assert_all_finite(X, estimator_name=type(self).__name__, input_name="X")
            if self.scaling_ is None:
                advice = "rescale X (for example with StandardScaler), or use scaling='global'."
            else:
                advice = (
                    f"scaling={self.scaling_!r} maps the training data to a range of order "
                    "1, so these values lie far outside it; check that X has the units of "
                    "the training data."
                )
            raise ValueError(
                f"X has values too large to represent in float32 after scaling: {advice}"
            )
        return Xs

    def _unscale(self, Xs):
        return Xs.astype(np.float64) / self._input_scale + self._input_offset

    def _scaling_log_jacobian(self):
        """``log |det d scale(X) / dX|``: added to a log-density of the scaled
        data, it gives the log-density in the units of ``X``."""
        return float(np.sum(np.log(self._input_scale)))

    # ------------------------------------------------------------- training
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Pretrain the networks, then alternate network steps and E-steps.

        With ``warm_start=True`` and a fitted estimator, pretraining is skipped
        and ``n_iter`` more iterations continue from the current state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; images flattened in (C, H, W) order when
            ``image_shape`` is given.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        continuing = self.warm_start and hasattr(self, "mixture_")
        # Everything fit sets, to put back if it fails before an iteration is
        # complete: the estimator is then exactly as before this call.
        previous_state = self.__dict__.copy()
        progress = {"initial": None, "checkpoint": None}
        try:
            X = self._validate_X(X, reset=not continuing, fitting=True)
            self._check_data_params(X, continuing)
            callbacks = self._check_callbacks()
            ctx = self._dist = _distributed.distributed_context()
            device = resolve_device(self.device)
            random_state = check_random_state(self.random_state)
            seed = int(random_state.randint(np.iinfo(np.int32).max))
            if ctx is not None:
                callbacks = callbacks if ctx.is_main else []
                if device.type == "cuda":
                    device = ctx.device  # this rank's GPU
                # Every rank starts from rank 0's seed (random_state may be None):
                # the order of the rows is shared, the noise is each rank's own.
                seed = _distributed.broadcast_object(seed, ctx)
                self._batch_order = torch.Generator().manual_seed(
                    _distributed.batch_order_seed(seed)
                )
                seed = _distributed.rank_seed(seed, ctx.rank)
            if not continuing:
                self._fit_scaling(X)
            Xs = torch.from_numpy(self._scale(X)).to(device)
            # Batch statistics in the losses span every rank's batch.
            with (
                local_torch_seed(seed),
                limited_torch_threads(),
                _distributed.synchronized_batches(ctx),
            ):
                self._fit_loop(Xs, device, random_state, continuing, progress, callbacks)
            self._drop_fit_state()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt) and progress["checkpoint"] is not None:
                # Keep the last completed iteration, so that the estimator is
                # usable and ``warm_start=True`` can continue from it.
                self._restore(progress["checkpoint"], Xs, device)
                self._drop_fit_state()
            else:
                # Divergence, an error or an interrupt before the first
                # iteration: leave the estimator as it was.
                if progress["initial"] is not None:
                    for name, net in self._networks().items():
                        net.load_state_dict(progress["initial"]["state"][name])
                self.__dict__.clear()
                self.__dict__.update(previous_state)
            raise
        self._check_result()
        _notify(callbacks, "on_fit_end", self)
        return self

    def _fit_loop(self, Xs, device, random_state, continuing, progress, callbacks):
        """Pretraining, then the EM iterations; ``progress`` receives the checkpoints."""
        if continuing:
            networks = {name: getattr(self, name + "_").to(device) for name in self._network_names}
            history = copy.deepcopy(self.history_)
            mixture = copy.deepcopy(self.mixture_)
        else:
            networks = self._build_networks(self.network_spec_)
            networks = {name: net.to(device) for name, net in networks.items()}
            history = {key: [] for key in HISTORY_KEYS}
            mixture = None
        self._set_networks(networks)
        self._data_parallel = _data_parallel_objective(networks, self._dist)
        params = [p for net in networks.values() for p in net.parameters()]
        optimizer = torch.optim.Adam(params, lr=self.learning_rate)
        if continuing and getattr(self, "_optimizer_state", None) is not None:
            # Adam's moment estimates go on where the last fit left them: a
            # fresh optimiser would take full-size steps on every weight at
            # first. A copy, so that a failed fit leaves the estimator intact.
            optimizer.load_state_dict(copy.deepcopy(self._optimizer_state))
        if continuing:
            progress["initial"] = progress["checkpoint"] = self._checkpoint(
                mixture, history, optimizer
            )
        _notify(callbacks, "on_fit_begin", self, n_samples=len(Xs), continuing=continuing)
        data = self._shard(Xs)
        if not continuing:
            mixture = self._pretrain(data, optimizer, history, random_state, callbacks)
            progress["checkpoint"] = self._checkpoint(mixture, history, optimizer)
        self._em_iterations(
            data, device, mixture, optimizer, history, random_state, progress, callbacks
        )
        del self._data_parallel  # DDP wrappers do not pickle; the networks stay
        self._restore(progress["checkpoint"], Xs, device)

    def _shard(self, Xs):
        """The rows this process trains on and encodes for the E-step.

        One process: all of them. Under :mod:`torch.distributed`, every rank
        trains on its part of each step's batch (:meth:`_minibatches`) and
        encodes its share of the rows in their order, whose codes the E-step
        gathers.
        """
        ctx = self._dist
        if ctx is None or ctx.world_size == 1:
            return _Data(train=Xs, codes=Xs)
        if len(Xs) < 2 * ctx.world_size:
            raise ValueError(
                f"A data-parallel fit on {ctx.world_size} processes needs at least 2 samples "
                f"per process ({2 * ctx.world_size}); X has {len(Xs)}."
            )
        codes = _distributed.shard_indices(len(Xs), ctx.rank, ctx.world_size)
        return _Data(train=Xs, codes=Xs[torch.as_tensor(codes, device=Xs.device)])

    def _steps_per_epoch(self, n_samples):
        """Optimisation steps of one epoch on ``n_samples`` rows (on every rank)."""
        ctx = getattr(self, "_dist", None)
        world_size = 1 if ctx is None else ctx.world_size
        step = int(self.batch_size) * world_size
        n_steps = -(-n_samples // step)
        if n_steps > 1 and n_samples - (n_steps - 1) * step < 2 * world_size:
            n_steps -= 1  # a rank's batch of one breaks batch normalisation
        return n_steps

    def _n_pretrain_epochs(self, n_samples):
        """The number of pretraining epochs on ``n_samples`` rows."""
        return self.pretrain_epochs

    def _minibatches(self, n_samples, device):
        """Row indices of this process's minibatches for one epoch.

        Under :mod:`torch.distributed`, one permutation of all rows, the same
        on every rank, is cut into steps of ``world_size * batch_size`` rows,
        and each rank takes its share of every step: every rank runs the same
        number of steps, and a step sees the rows one process would.
        """
        ctx = getattr(self, "_dist", None)
        world_size = 1 if ctx is None else ctx.world_size
        if world_size == 1:
            order = torch.randperm(n_samples, device=device)
        else:
            order = torch.randperm(n_samples, generator=self._batch_order).to(device)
        batches = order.split(int(self.batch_size) * world_size)[: self._steps_per_epoch(n_samples)]
        if world_size > 1:
            batches = [batch.tensor_split(world_size)[ctx.rank] for batch in batches]
        return batches

    def _pretrain(self, data, optimizer, history, random_state, callbacks):
        """The pretraining epochs and the first E-step; returns the mixture."""
        n_epochs = self.pretrain_epochs_ = self._n_pretrain_epochs(len(data.train))
        for epoch in range(n_epochs):
            loss, seconds = self._timed_epoch(
                data.train,
                lambda x, rows: self._pretrain_loss(x),
                optimizer,
                "pretrain",
                epoch,
                n_epochs,
                callbacks,
            )
            history["pretrain_loss"].append(loss)
            history["epoch_time"].append(seconds)
            _notify(
                callbacks,
                "on_epoch_end",
                self,
                stage="pretrain",
                epoch=epoch,
                n_epochs=n_epochs,
                loss=loss,
                seconds=seconds,
            )
        mixture = make_mixture(
            random_state=random_state.randint(np.iinfo(np.int32).max),
            **self._mixture_params(),
        )
        return self._e_step(mixture, data.codes, history, random_state, None, 0, callbacks)

    def _em_iterations(
        self, data, device, mixture, optimizer, history, random_state, progress, callbacks
    ):
        """``n_iter`` iterations of a network epoch against the fixed mixture, then an E-step."""
        for group in optimizer.param_groups:
            group["lr"] = getattr(self, self._learning_rate_param("EM"))
        done = len(history["loss"])
        for iteration in range(self.n_iter):
            start = time.perf_counter()
            loss, _ = self._timed_epoch(
                data.train,
                self._em_batch_loss(mixture, device),
                optimizer,
                "EM",
                iteration,
                self.n_iter,
                callbacks,
            )
            history["loss"].append(loss)
            mixture = self._e_step(
                mixture,
                data.codes,
                history,
                random_state,
                self._e_step_max_iter,
                done + iteration + 1,
                callbacks,
            )
            seconds = time.perf_counter() - start
            history["epoch_time"].append(seconds)
            _notify(
                callbacks,
                "on_epoch_end",
                self,
                stage="EM",
                epoch=iteration,
                n_epochs=self.n_iter,
                loss=loss,
                seconds=seconds,
                n_clusters=history["n_clusters"][-1],
            )
            if self._latent_collapsed(history["latent_scale"]):
                # Keep the last checkpoint: the state before the collapse.
                kept = len(progress["checkpoint"]["history"]["loss"])
                warnings.warn(
                    f"{type(self).__name__}: the latent codes collapsed during EM "
                    f"iteration {iteration + 1} (their spread fell below "
                    f"{self._collapse_ratio:.0%} of its value after pretraining); "
                    f"training stopped and the estimator keeps its state after "
                    f"{kept} EM iterations. {self._collapse_advice()}",
                    ConvergenceWarning,
                    stacklevel=5,
                )
                break
            progress["checkpoint"] = self._checkpoint(mixture, history, optimizer)

    #: Fitted attributes that fitting the E-step's mixture may set (sent from
    #: rank 0 with the mixture under torch.distributed).
    _e_step_attributes = ()

    #: Variational iterations of each warm-started E-step refit.
    _e_step_max_iter = 20

    #: Refit the mixture from scratch when a warm refit loses a component
    #: (for estimators whose number of clusters is given).
    _keep_all_components = False

    #: Private attributes that live for one call of ``fit`` only: the
    #: distributed context, its DDP wrappers and row order.
    _fit_state_attributes = ("_dist", "_data_parallel", "_batch_order")

    def _drop_fit_state(self):
        for name in self._fit_state_attributes:
            self.__dict__.pop(name, None)

    #: EM stops when the latent spread falls below this fraction of its value
    #: after pretraining: the denoiser or decoder can no longer read the codes.
    _collapse_ratio = 0.25

    def _latent_collapsed(self, latent_scale):
        return latent_scale[-1] < self._collapse_ratio * latent_scale[0]

    def _divergence_advice(self, stage):
        name = self._learning_rate_param(stage)
        return f"Lower {name} (now {getattr(self, name)}) or check the scale of X."

    def _timed_epoch(self, Xs, loss_fn, optimizer, stage, epoch, n_epochs, callbacks):
        """One epoch of ``loss_fn(x, rows)``, a batch and its row indices in
        ``Xs``, with the callbacks' ``on_epoch_begin``; returns the mean loss
        and the seconds it took."""
        _notify(callbacks, "on_epoch_begin", self, stage=stage, epoch=epoch, n_epochs=n_epochs)
        start = time.perf_counter()
        loss = self._run_epoch(Xs, loss_fn, optimizer, stage, epoch, callbacks)
        return loss, time.perf_counter() - start

    def _run_epoch(self, Xs, loss_fn, optimizer, stage, epoch, callbacks=()):
        n_samples = Xs.shape[0]
        for net in self._networks().values():
            net.train()
        batches = self._minibatches(n_samples, Xs.device)
        ctx = getattr(self, "_dist", None)
        total, count = 0.0, 0
        objective = getattr(self, "_data_parallel", None)
        for idx in batches:
            _notify(callbacks, "on_batch_begin", self, stage=stage, batch_size=len(idx))
            # Data-parallel, the whole loss is the forward pass of one DDP
            # wrapper around the networks.
            x = Xs[idx]
            loss = loss_fn(x, idx) if objective is None else objective(loss_fn, x, idx)
            if ctx is None and not torch.isfinite(loss):
                raise self._diverged(f"the loss became {loss.item()}", stage, epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if ctx is not None and not _gradients_finite(optimizer):
                # The gradients are all-reduced, hence the same on every
                # rank: a non-finite loss on any rank stops all of them
                # here together, with no collective of its own.
                raise self._diverged("its gradients became non-finite", stage, epoch)
            optimizer.step()
            batch_loss = loss.item()
            total += batch_loss * len(idx)
            count += len(idx)
            _notify(
                callbacks,
                "on_batch_end",
                self,
                stage=stage,
                batch_size=len(idx),
                loss=batch_loss,
            )
        if ctx is not None:
            total, count = _distributed.all_reduce_sum([total, count], ctx)
            if not np.isfinite(total):
                raise self._diverged(f"the loss became {total / count}", stage, epoch)
        return total / count

    def _diverged(self, what, stage, epoch):
        return TrainingDivergedError(
            f"Training diverged: {what} during {_STAGE_NAMES[stage]} {epoch + 1}. "
            f"{self._divergence_advice(stage)} The estimator was left as before this fit."
        )

    def _gather_codes(self, Z):
        """Every rank's codes (in row order) under torch.distributed, else ``Z``."""
        ctx = getattr(self, "_dist", None)
        if ctx is None or ctx.world_size == 1:
            return Z
        return _distributed.gather_rows(Z, ctx)

    def _e_step_latents(self, Xs):
        """The latent codes the E-step fits its mixture on (float64 numpy), of
        every row: under torch.distributed ``Xs`` is this rank's share and the
        codes of all ranks are gathered."""
        return self._gather_codes(self._encode_mean(Xs))

    def _fit_e_step_mixture(self, mixture, Z, max_iter, rows=None):
        """Fit (``max_iter=None``: the first E-step) or warm-refit the mixture on
        the codes ``Z[rows]`` (``rows=None``: all of ``Z``, the codes of every row)."""
        return fit_mixture(
            mixture,
            Z if rows is None else Z[rows],
            max_iter=max_iter,
            keep_all_components=self._keep_all_components,
        )

    def _e_step(self, mixture, Xs, history, random_state, max_iter, iteration, callbacks):
        """Refit ``mixture`` on the latent codes; ``iteration`` 0 is the E-step after
        pretraining."""
        Z = self._e_step_latents(Xs)
        if not np.all(np.isfinite(Z)):
            # The last optimiser step can break the weights after a finite loss.
            stage = "pretrain" if iteration == 0 else "EM"
            raise TrainingDivergedError(
                "Training diverged: the latent codes became non-finite. "
                f"{self._divergence_advice(stage)} The estimator was left as before this fit."
            )
        ctx = getattr(self, "_dist", None)
        # Every rank draws the subsample (of the same gathered codes), so that
        # the ranks' random_state streams stay in step.
        rows = None
        if self.e_step_max_samples is not None and len(Z) > self.e_step_max_samples:
            rows = random_state.choice(len(Z), self.e_step_max_samples, replace=False)
        if ctx is None or ctx.is_main:
            # Under torch.distributed the mixture is fitted once, on rank 0.
            mixture = self._fit_e_step_mixture(mixture, Z, max_iter, rows)
        if ctx is not None:
            fitted = {name: getattr(self, name) for name in self._e_step_attributes}
            mixture, fitted = _distributed.broadcast_object((mixture, fitted), ctx)
            self.__dict__.update(fitted)
        n_clusters = len(occupied_components(mixture, Z))
        history["n_clusters"].append(n_clusters)
        history["latent_scale"].append(float(np.sqrt(np.mean(np.var(Z, axis=0)))))
        # Absent from the history of models fitted before it was recorded.
        history.setdefault("latent_effective_dim", []).append(effective_dimension(Z))
        _notify(
            callbacks,
            "on_e_step_end",
            self,
            iteration=iteration,
            latents=Z,
            mixture=mixture,
            n_clusters=n_clusters,
        )
        return mixture

    def _networks(self):
        return {name: getattr(self, name + "_") for name in self._network_names}

    def _set_networks(self, networks):
        for name, net in networks.items():
            if net is None:
                self.__dict__.pop(name + "_", None)
            else:
                setattr(self, name + "_", net)

    def _checkpoint(self, mixture, history, optimizer):
        return {
            "state": {
                name: copy.deepcopy(net.state_dict()) for name, net in self._networks().items()
            },
            "optimizer": copy.deepcopy(optimizer.state_dict()),
            "mixture": copy.deepcopy(mixture),
            "history": copy.deepcopy(history),
        }

    def _restore(self, checkpoint, Xs, device):
        """Publish a checkpoint as the fitted state (weights, mixture, labels)."""
        for name, net in self._networks().items():
            net.load_state_dict(checkpoint["state"][name])
            net.eval()
        # Adam's state, for a warm start (private: an implementation detail).
        self._optimizer_state = checkpoint["optimizer"]
        self.mixture_ = checkpoint["mixture"]
        self.history_ = checkpoint["history"]
        self._device = device
        Z = self._encode_mean(Xs)
        self.components_ = occupied_components(self.mixture_, Z)
        self.n_clusters_ = len(self.components_)
        self.labels_ = self._predict_latent(Z)

    # ------------------------------------------------------------ inference
    def _encode_mean(self, Xs, encode=None):
        """Latent means of scaled rows (a tensor on the device), as float64 numpy.

        ``encode`` (default: :meth:`_encode`) maps a batch to ``(mean, log_var)``.
        """
        return self._encode_mean_tensor(Xs, encode).cpu().numpy()

    def _encode_mean_tensor(self, Xs, encode=None):
        """Latent means of scaled rows, as a float64 tensor on their device."""
        encode = self._encode if encode is None else encode
        out = []
        with torch.inference_mode(), limited_torch_threads():
            for net in self._networks().values():
                net.eval()
            for start in range(0, Xs.shape[0], INFERENCE_BATCH_SIZE):
                batch = Xs[start : start + INFERENCE_BATCH_SIZE]
                n_rows = len(batch)
                if n_rows < MIN_INFERENCE_ROWS:
                    # Matrix products of fewer rows take other BLAS kernels
                    # (on AVX-512 CPUs, 10 rows round differently from 60):
                    # repeating the rows makes a row's code the same alone
                    # as in any batch.
                    batch = batch[torch.arange(MIN_INFERENCE_ROWS, device=batch.device) % n_rows]
                mean, _ = encode(batch)
                out.append(mean[:n_rows].double())
        return torch.cat(out)

    def _latent_chunks(self, X):
        """Latent means of ``X`` (float64 tensors on the device), chunk by chunk:
        scaling, moving to the device and encoding one chunk at a time keeps
        memory bounded for any n."""
        check_is_fitted(self, "mixture_")
        X = self._validate_X(X, reset=False)
        device = self._inference_device()
        for start in range(0, X.shape[0], INFERENCE_BATCH_SIZE):
            chunk = torch.from_numpy(self._scale(X[start : start + INFERENCE_BATCH_SIZE]))
            yield self._encode_mean_tensor(chunk.to(device))

    def _inference_device(self):
        device = getattr(self, "_device", torch.device("cpu"))
        if device.type == "cuda" and not torch.cuda.is_available():
            device = torch.device("cpu")
        networks = self._networks().values()
        if any(next(net.parameters()).device != device for net in networks):
            for net in networks:
                net.to(device)
        return device

    def _posterior(self, device):
        """The mixture posterior over the clusters, computed by torch on ``device``
        in float64 (the same argmax as scikit-learn's)."""
        return TorchMixture.for_posterior(self.mixture_, device, self.components_)

    def _log_proba_chunks(self, X):
        posterior = None
        for Z in self._latent_chunks(X):
            if posterior is None:
                posterior = self._posterior(Z.device)
            with torch.inference_mode(), limited_torch_threads():
                yield posterior.log_proba(Z)

    def _predict_latent(self, Z):
        """Labels of latent codes (float64 numpy)."""
        return restricted_log_proba_torch(self.mixture_, Z, self.components_).argmax(axis=1)

    def transform(self, X):
        """Latent mean ``E[z|x]`` of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        Z : ndarray of shape (n_samples, latent_dim), dtype float32
            The networks compute in float32; a wider type would only pretend
            to a precision they do not have (the last bits depend on the batch
            the row was encoded in).
        """
        return np.concatenate([Z.float().cpu().numpy() for Z in self._latent_chunks(X)])

    def predict(self, X):
        """Cluster of each sample: the mixture posterior's argmax at the latent mean.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Compact labels in ``0 .. n_clusters_ - 1``.
        """
        return np.concatenate(
            [log_proba.argmax(dim=1).cpu().numpy() for log_proba in self._log_proba_chunks(X)]
        )

    def predict_proba(self, X):
        """Posterior probability of each cluster at the latent mean.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_clusters_)
            Columns follow the compact labels of :meth:`predict`.
        """
        return np.concatenate(
            [log_proba.exp().cpu().numpy() for log_proba in self._log_proba_chunks(X)]
        )

    @property
    def _n_features_out(self):
        # Raises AttributeError before fit, which get_feature_names_out turns
        # into NotFittedError.
        return self.network_spec_.latent_dim

    # -------------------------------------------------------------- sampling
    def _sample_latents(self, n_samples, cluster, random_state):
        """Draw latent codes from the mixture, grouped by cluster like
        :meth:`sklearn.mixture.GaussianMixture.sample`."""
        check_is_fitted(self, "mixture_")
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        if cluster is None:
            weights = self.mixture_.weights_[self.components_]
            counts = random_state.multinomial(n_samples, weights / weights.sum())
        else:
            if (
                not isinstance(cluster, Integral)
                or isinstance(cluster, bool)
                or not 0 <= cluster < self.n_clusters_
            ):
                raise ValueError(
                    f"cluster must be an integer in [0, {self.n_clusters_ - 1}] "
                    f"(n_clusters_={self.n_clusters_}), got {cluster!r}."
                )
            counts = np.zeros(self.n_clusters_, dtype=int)
            counts[cluster] = n_samples
        Z, y = [], []
        for label, (component, count) in enumerate(zip(self.components_, counts, strict=True)):
            if count == 0:
                continue
            mean = self.mixture_.means_[component]
            cov = self.mixture_.covariances_[component]
            if self.mixture_.covariance_type == "diag":
                Z.append(mean + np.sqrt(cov) * random_state.standard_normal((count, len(mean))))
            else:
                Z.append(random_state.multivariate_normal(mean, cov, size=count))
            y.append(np.full(count, label))
        return np.concatenate(Z), np.concatenate(y)

    def _generate(self, n_samples, cluster, generate_batch):
        """Latent codes from the mixture, then ``generate_batch(z)`` on the
        device, batch by batch, seeded locally; returns ``(X, y)`` with ``X``
        in the units of the training data."""
        random_state = check_random_state(self.random_state)
        Z, y = self._sample_latents(n_samples, cluster, random_state)
        device = self._inference_device()
        seed = int(random_state.randint(np.iinfo(np.int32).max))
        for net in self._networks().values():
            net.eval()
        generated = []
        with local_torch_seed(seed), torch.inference_mode(), limited_torch_threads():
            for start in range(0, len(Z), SAMPLE_BATCH_SIZE):
                z = Z[start : start + SAMPLE_BATCH_SIZE]
                z = torch.as_tensor(z, dtype=torch.float32, device=device)
                generated.append(generate_batch(z).cpu().numpy())
        return self._unscale(np.concatenate(generated)), y

    # -------------------------------------------------------------- pickling
    def __getstate__(self):
        state = dict(super().__getstate__())
        for name in self._network_names:
            key = name + "_"
            if key in state:
                # CPU tensors, so that a CUDA-trained model loads anywhere.
                state[key] = _tensors_to_bytes(state[key].state_dict())
        if state.get("_optimizer_state") is not None:
            state["_optimizer_state"] = _tensors_to_bytes(state["_optimizer_state"])
        state.pop("_device", None)
        return state

    def __setstate__(self, state):
        pending = {
            name: state[name + "_"]
            for name in self._network_names
            if isinstance(state.get(name + "_"), bytes)
        }
        super().__setstate__(state)
        if isinstance(state.get("_optimizer_state"), bytes):
            self._optimizer_state = torch.load(
                io.BytesIO(state["_optimizer_state"]), map_location="cpu", weights_only=True
            )
        if not pending:
            return
        # Build on the meta device (no RNG use, no memory), then load the
        # weights with torch's safe loader.
        spec = getattr(self, "network_spec_", None)
        if spec is None:  # pickled by version 0.1.0, which did not record it
            spec = self._network_spec(self.n_features_in_)
        with torch.device("meta"):
            networks = self._build_networks(spec)
        device = torch.device("cpu")
        for name, blob in pending.items():
            weights = torch.load(io.BytesIO(blob), map_location=device, weights_only=True)
            net = networks[name].to_empty(device=device)
            net.load_state_dict(weights)
            net.eval()
            setattr(self, name + "_", net)
        self._device = device
