"""Thin helpers over :mod:`torch.distributed` for one fit spread over processes.

Nothing here starts processes or a process group: the caller launches them
(``torchrun``, :func:`torch.multiprocessing.spawn`, a cluster scheduler) and
calls :func:`torch.distributed.init_process_group`. These helpers then answer
the questions a data-parallel fit asks:

- which rows does this rank train on (:func:`shard_indices`), with the same
  number of optimizer steps on every rank;
- how to seed each rank (:func:`rank_seed`);
- how to synchronise gradients (:func:`wrap_ddp`, DistributedDataParallel);
- how to bring the latent codes of every rank to the E-step, in full
  (:func:`gather_rows`) or as a random subsample (:func:`gather_subsample`),
  and how to send the fitted mixture back (:func:`broadcast_object`);
- how to combine per-rank statistics (:func:`all_reduce_sum`,
  :func:`gather_moments`);
- how a loss computes batch statistics (a mean or a covariance over the
  batch) over the batches of every rank, with gradients
  (:func:`synchronized_batches`, :func:`batch_mean_and_variance`,
  :func:`batch_covariance`);
- how many bytes all this moves (:func:`count_communication`,
  :func:`allreduce_bytes`, :func:`ddp_bytes_per_step`).

Every collective must be called by every rank of the group, in the same
order, or the job hangs. Only the default (world) process group is used.
"""

import inspect
import os
import pickle
from collections import defaultdict
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
import torch
import torch.distributed as dist
from sklearn.utils import check_random_state

__all__ = [
    "CommunicationLog",
    "DistributedContext",
    "all_reduce_sum",
    "allreduce_bytes",
    "batch_covariance",
    "batch_mean_and_variance",
    "batch_order_seed",
    "broadcast_object",
    "count_communication",
    "ddp_bytes_per_step",
    "distributed_context",
    "gather_moments",
    "gather_rows",
    "gather_subsample",
    "rank_seed",
    "shard_indices",
    "synchronized_batches",
    "unwrap",
    "wrap_ddp",
]


# ---------------------------------------------------------------- context
@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the default process group.

    Attributes
    ----------
    rank : int
        Global rank of this process, ``0 .. world_size - 1``.
    world_size : int
        Number of processes.
    backend : str
        The process group's backend (``"gloo"``, ``"nccl"``, ...).
    local_rank : int
        Rank on this machine (``LOCAL_RANK``, as set by ``torchrun``; the
        global rank when the variable is absent).
    device : torch.device
        Where this rank computes and where the collectives' tensors live:
        ``cuda:local_rank`` for ``nccl`` (which only moves CUDA tensors), the
        CPU for any other backend.
    """

    rank: int
    world_size: int
    backend: str
    local_rank: int
    device: torch.device

    @property
    def is_main(self):
        """True on rank 0, the rank that fits the mixture and reports."""
        return self.rank == 0


def distributed_context():
    """The :class:`DistributedContext` of this process, or None.

    None unless :mod:`torch.distributed` is available and its default process
    group is initialised; code written for one process then runs unchanged.

    Returns
    -------
    ctx : DistributedContext or None
    """
    if not (dist.is_available() and dist.is_initialized()):
        return None
    rank = dist.get_rank()
    backend = str(dist.get_backend())
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if backend == "nccl":
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    return DistributedContext(
        rank=rank,
        world_size=dist.get_world_size(),
        backend=backend,
        local_rank=local_rank,
        device=device,
    )


# ------------------------------------------------------------------ seeds
def rank_seed(seed, rank):
    """A reproducible seed for ``rank``, different on every rank.

    ``rank_seed(seed, 0) == seed``, so that a one-process run draws exactly
    what a plain fit seeded with ``seed`` draws; rank ``r > 0`` gets the first
    word of :class:`numpy.random.SeedSequence` ``(seed, spawn_key=(r,))``, the
    ``r``-th child of ``SeedSequence(seed)`` (statistically independent
    streams, and no rank's seed depends on the world size).

    Use it for what must differ between ranks: torch's minibatch order and
    noise (``torch.manual_seed(rank_seed(seed, ctx.rank))``). Keep a shared
    seed for what must agree: the numpy ``random_state`` that draws the
    E-step's subsample and the mixture's seeds.

    Parameters
    ----------
    seed : int
        Non-negative base seed, the same on every rank.
    rank : int
        Non-negative rank.

    Returns
    -------
    seed : int
        In ``[0, 2**31 - 1]``: valid for :func:`torch.manual_seed` and
        :class:`numpy.random.RandomState`.
    """
    for name, value in (("seed", seed), ("rank", rank)):
        if not isinstance(value, Integral) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    if rank == 0:
        return int(seed)
    state = np.random.SeedSequence(int(seed), spawn_key=(int(rank),)).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)


# ----------------------------------------------------------------- shards
def batch_order_seed(seed):
    """The seed of the row order that every rank shares in a data-parallel fit.

    The 0-th child of :class:`numpy.random.SeedSequence` ``(seed)``: the
    same on every rank, and independent of every stream of
    :func:`rank_seed` (rank 0 uses ``seed`` itself, rank ``r > 0`` the
    ``r``-th child).

    Parameters
    ----------
    seed : int
        Non-negative base seed, the same on every rank.

    Returns
    -------
    seed : int
        In ``[0, 2**31 - 1]``.
    """
    state = np.random.SeedSequence(int(seed), spawn_key=(0,)).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)


def shard_indices(n_samples, rank, world_size, *, uneven="keep", seed=None):
    """The rows of ``rank``: a contiguous block of the row order.

    The row order is ``0 .. n_samples - 1``, or a random permutation of it
    drawn from ``seed`` (every rank must pass the same seed; use a new one each
    epoch to reshuffle the shards). Rank ``r`` takes the ``r``-th block of
    :func:`numpy.array_split` of that order: the first ``n_samples %
    world_size`` ranks hold one row more than the others, and every row is on
    exactly one rank. ``uneven`` then decides what the shorter shards do.

    DistributedDataParallel all-reduces the gradients at every optimizer step,
    so every rank must run the same number of steps per epoch: a rank that
    stops early leaves the others waiting in the all-reduce for ever. With
    shards of equal size and the same ``batch_size``, the minibatch split is
    the same on every rank, including the rule that drops a last batch of one.

    Parameters
    ----------
    n_samples : int
        Number of rows of the global data.
    rank, world_size : int
        This rank and the number of ranks.
    uneven : {"keep", "pad", "drop"}, default="keep"
        - ``"keep"``: shards of ``n // world_size`` or one more rows; every row
          exactly once. For the E-step: encode these rows and
          :func:`gather_rows` gives the codes in global order.
        - ``"pad"``: a shorter shard repeats its first row, so that every rank
          holds ``ceil(n / world_size)`` rows. At most ``world_size - 1`` rows
          count twice per epoch; nothing is left out. For training.
        - ``"drop"``: a longer shard leaves out its last row, so that every
          rank holds ``n // world_size`` rows. At most ``world_size - 1`` rows
          are left out per epoch (different ones each epoch when ``seed``
          changes). For training.
    seed : int, default=None
        Seed of the permutation of the rows; None keeps their order.

    Returns
    -------
    indices : ndarray of shape (n_rows,), dtype int64
        Global indices of this rank's rows.
    """
    for name, value, low in (
        ("n_samples", n_samples, 0),
        ("world_size", world_size, 1),
        ("rank", rank, 0),
    ):
        if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    if rank >= world_size:
        raise ValueError(f"rank={rank} must be < world_size={world_size}.")
    if uneven not in ("keep", "pad", "drop"):
        raise ValueError(f"uneven must be 'keep', 'pad' or 'drop', got {uneven!r}.")
    if uneven != "keep" and n_samples < world_size:
        raise ValueError(
            f"n_samples={n_samples} rows cannot give each of the {world_size} ranks a row."
        )
    if seed is None:
        order = np.arange(n_samples, dtype=np.int64)
    else:
        order = np.random.default_rng(seed).permutation(n_samples).astype(np.int64)
    base, extra = divmod(n_samples, world_size)
    start = rank * base + min(rank, extra)
    block = order[start : start + base + (rank < extra)]
    if uneven == "pad" and extra and rank >= extra:
        block = np.concatenate([block, block[:1]])
    elif uneven == "drop" and rank < extra:
        block = block[:base]
    return block


# -------------------------------------------------------- communication log
@dataclass
class CommunicationLog:
    """Bytes this rank sent and received, by operation, while it was active.

    The counts are the tensor payload of an ideal algorithm, seen from this
    rank: a ring all-reduce of ``B`` bytes over ``p`` ranks sends and receives
    ``2 (p - 1) / p * B`` per rank (:func:`allreduce_bytes`); a broadcast of
    ``B`` bytes is received once by every other rank; a gather receives every
    other rank's rows on the destination only. Transport headers and the
    backend's own choice of algorithm are not counted.
    """

    sent: dict = field(default_factory=lambda: defaultdict(float))
    received: dict = field(default_factory=lambda: defaultdict(float))
    calls: dict = field(default_factory=lambda: defaultdict(int))

    @property
    def bytes_sent(self):
        """Total bytes sent, all operations."""
        return float(sum(self.sent.values()))

    @property
    def bytes_received(self):
        """Total bytes received, all operations."""
        return float(sum(self.received.values()))

    def record(self, op, sent, received):
        self.sent[op] += sent
        self.received[op] += received
        self.calls[op] += 1


_active_logs = []


@contextmanager
def count_communication():
    """Count the bytes moved by this module's collectives inside the block.

    Covers every helper of this module, and the gradient all-reduce of models
    wrapped with ``wrap_ddp(..., count_bytes=True)``. Collectives called
    directly through :mod:`torch.distributed` are not seen.

    Yields
    ------
    log : CommunicationLog
    """
    log = CommunicationLog()
    _active_logs.append(log)
    try:
        yield log
    finally:
        _active_logs.remove(log)


def _record(op, sent, received):
    for log in _active_logs:
        log.record(op, sent, received)


def allreduce_bytes(n_bytes, world_size):
    """Bytes a ring all-reduce of ``n_bytes`` sends (and receives) per rank.

    A ring all-reduce is a reduce-scatter then an all-gather, each of
    ``world_size - 1`` steps that move ``n_bytes / world_size``:
    ``2 * (world_size - 1) / world_size * n_bytes``, under twice the payload
    for any number of ranks.
    """
    return 2.0 * (world_size - 1) / world_size * n_bytes


def ddp_bytes_per_step(module, world_size, broadcast_buffers=True):
    """Bytes one DistributedDataParallel optimizer step moves per rank.

    The gradients of the trainable parameters are all-reduced
    (:func:`allreduce_bytes`); with ``broadcast_buffers`` (DDP's default),
    rank 0 also sends its buffers (batch-norm running statistics, for
    example) before each forward pass, and every other rank receives them.

    Parameters
    ----------
    module : torch.nn.Module
        The unwrapped model.
    world_size : int
    broadcast_buffers : bool, default=True

    Returns
    -------
    n_bytes : float
        Bytes received by a rank other than 0 per step.
    """
    grad_bytes = sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)
    total = allreduce_bytes(grad_bytes, world_size)
    if broadcast_buffers and world_size > 1:
        total += sum(b.numel() * b.element_size() for b in module.buffers())
    return total


# ------------------------------------------------------------ collectives
def _as_tensor(x, ctx):
    """``x`` as a contiguous tensor on the communication device, and a
    function that turns a tensor back into ``x``'s kind (numpy or tensor)."""
    if isinstance(x, torch.Tensor):
        device = x.device
        tensor = x.detach().to(ctx.device).contiguous()
        return tensor, lambda t: t.to(device)
    array = np.ascontiguousarray(x)
    return torch.from_numpy(array).to(ctx.device), lambda t: t.cpu().numpy()


def _all_gather_counts(n_rows, ctx):
    """Row counts of every rank, on every rank (one tiny all-gather)."""
    counts = torch.zeros((ctx.world_size, 1), dtype=torch.int64, device=ctx.device)
    mine = torch.tensor([n_rows], dtype=torch.int64, device=ctx.device)
    dist.all_gather(list(counts.unbind(0)), mine)
    _record("all_gather", 8 * (ctx.world_size - 1), 8 * (ctx.world_size - 1))
    return counts.ravel().tolist()


def _exchange_blocks(local, out, offsets, counts, ctx, dst):
    """Fill ``out[offsets[r] : offsets[r] + counts[r]]`` with rank r's ``local``.

    Each block moves once, straight into its place in ``out``: nothing is
    padded and nothing is copied after arrival. With ``dst`` None, every
    rank broadcasts its block (``out`` is filled on every rank); otherwise
    the ranks send their block to ``dst`` (``out`` is used on ``dst`` only).
    """
    rank, row_bytes = ctx.rank, int(np.prod(local.shape[1:])) * local.element_size()
    if out is not None and counts[rank]:
        out[offsets[rank] : offsets[rank] + counts[rank]].copy_(local)
    if dst is None:
        for src in range(ctx.world_size):
            if counts[src]:
                dist.broadcast(out[offsets[src] : offsets[src] + counts[src]], src=src)
        received = (sum(counts) - counts[rank]) * row_bytes
        _record("broadcast", counts[rank] * row_bytes * (ctx.world_size - 1), received)
        return
    ops = []
    if rank == dst:
        for src in range(ctx.world_size):
            if src != dst and counts[src]:
                block = out[offsets[src] : offsets[src] + counts[src]]
                ops.append(dist.P2POp(dist.irecv, block, src))
        _record("gather", 0, (sum(counts) - counts[rank]) * row_bytes)
    else:
        if counts[rank]:
            ops.append(dist.P2POp(dist.isend, local, dst))
        _record("gather", counts[rank] * row_bytes, 0)
    if ops:
        for request in dist.batch_isend_irecv(ops):
            request.wait()


def gather_rows(x, ctx, *, dst=None):
    """Concatenate every rank's rows, in rank order, on every rank or on ``dst``.

    With shards from ``shard_indices(n, rank, world_size)`` (``uneven="keep"``,
    no ``seed``), rank order is global row order: the result is the array a
    single process would hold. Ranks may hold different numbers of rows (even
    none); the trailing dimensions and the dtype must agree.

    Each rank's rows travel once, straight into their place in the result
    (a broadcast per rank, or point-to-point sends to ``dst``), so the result
    is the only full-size allocation: peak memory is the result plus this
    rank's own rows.

    Parameters
    ----------
    x : ndarray or torch.Tensor of shape (n_rows, ...)
        This rank's rows.
    ctx : DistributedContext or None
        None (no process group): ``x`` is returned as it is.
    dst : int, default=None
        Rank that receives the result; None: every rank does.

    Returns
    -------
    rows : ndarray or torch.Tensor of shape (sum of n_rows, ...), or None
        Of ``x``'s kind (a tensor on ``x``'s device); None on the ranks
        other than ``dst``.
    """
    if ctx is None or ctx.world_size == 1:
        return x
    local, back = _as_tensor(x, ctx)
    return _gather_blocks(local, back, _all_gather_counts(local.shape[0], ctx), ctx, dst)


def _gather_blocks(local, back, counts, ctx, dst):
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()
    out = None
    if dst is None or ctx.rank == dst:
        out = torch.empty((sum(counts), *local.shape[1:]), dtype=local.dtype, device=ctx.device)
    _exchange_blocks(local, out, offsets, counts, ctx, dst)
    return None if out is None else back(out)


def gather_subsample(x, max_samples, ctx, random_state, *, dst=0):
    """A random subsample of the rows of all ranks; only those rows travel.

    Every rank draws the same ``random_state.choice(n, max_samples,
    replace=False)`` over the ``n`` global rows (``n`` is the sum of the
    ranks' row counts, exchanged first) and sends only the chosen rows it
    holds. With the rows in global order (``shard_indices`` with
    ``uneven="keep"`` and no ``seed``), the result is exactly
    ``Z[random_state.choice(len(Z), max_samples, replace=False)]`` of the
    gathered ``Z``, the subsample one process draws, in the same order; with
    ``n <= max_samples``, every row is gathered, as by :func:`gather_rows`.

    Parameters
    ----------
    x : ndarray or torch.Tensor of shape (n_rows, ...)
        This rank's rows.
    max_samples : int
        Rows of the subsample.
    ctx : DistributedContext or None
        None: the subsample of ``x`` itself.
    random_state : int or RandomState
        Must be in the same state on every rank (the same seed, or a
        ``RandomState`` that every rank has used in the same way); it advances
        as in a single process.
    dst : int or None, default=0
        Rank that receives the subsample; None: every rank does.

    Returns
    -------
    rows : ndarray or torch.Tensor of shape (min(n, max_samples), ...), or None
        Of ``x``'s kind; None on the ranks other than ``dst``.
    """
    if not isinstance(max_samples, Integral) or isinstance(max_samples, bool) or max_samples < 1:
        raise ValueError(f"max_samples must be a positive integer, got {max_samples!r}.")
    random_state = check_random_state(random_state)
    if ctx is None or ctx.world_size == 1:
        if len(x) <= max_samples:
            return x
        return x[random_state.choice(len(x), max_samples, replace=False)]
    local, back = _as_tensor(x, ctx)
    counts = _all_gather_counts(local.shape[0], ctx)
    n_samples = sum(counts)
    if n_samples <= max_samples:
        return _gather_blocks(local, back, counts, ctx, dst)
    chosen = random_state.choice(n_samples, max_samples, replace=False)
    # The chosen rows sorted by rank are contiguous blocks of the result, in
    # rank order; ``position`` puts each row back at its place in ``chosen``.
    position = np.argsort(chosen, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    sorted_chosen = chosen[position]
    cuts = np.searchsorted(sorted_chosen, bounds)
    sub_counts = np.diff(cuts).tolist()
    mine = sorted_chosen[cuts[ctx.rank] : cuts[ctx.rank + 1]] - bounds[ctx.rank]
    selected = local[torch.as_tensor(mine, device=local.device)]
    by_rank = None
    if dst is None or ctx.rank == dst:
        by_rank = torch.empty((max_samples, *local.shape[1:]), dtype=local.dtype, device=ctx.device)
    _exchange_blocks(selected, by_rank, cuts[:-1].tolist(), sub_counts, ctx, dst)
    if by_rank is None:
        return None
    out = torch.empty_like(by_rank)
    out[torch.as_tensor(position, device=out.device)] = by_rank
    return back(out)


def broadcast_object(obj, ctx, src=0):
    """Send a picklable object (a fitted mixture, say) from ``src`` to every rank.

    Parameters
    ----------
    obj : object
        The object on ``src``; ignored on the other ranks (pass None).
    ctx : DistributedContext or None
        None: ``obj`` is returned as it is.
    src : int, default=0

    Returns
    -------
    obj : object
        ``src``'s object, unpickled on every other rank (a copy there, the
        same object on ``src``).
    """
    if ctx is None or ctx.world_size == 1:
        return obj
    box = [obj if ctx.rank == src else None]
    dist.broadcast_object_list(box, src=src, device=ctx.device)
    if _active_logs:
        n_bytes = len(pickle.dumps(box[0])) + 8  # the payload and its size
        if ctx.rank == src:
            _record("broadcast_object", n_bytes * (ctx.world_size - 1), 0)
        else:
            _record("broadcast_object", 0, n_bytes)
    return box[0]


def _all_reduce_in_place(tensor, world_size, op_name):
    """Sum ``tensor`` over the ranks, in place, recorded as ``op_name``."""
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    n_bytes = allreduce_bytes(tensor.numel() * tensor.element_size(), world_size)
    _record(op_name, n_bytes, n_bytes)
    return tensor


def all_reduce_sum(value, ctx):
    """Element-wise sum over the ranks of a number or an array, on every rank.

    For per-epoch totals (a loss sum and a row count, cluster occupancy
    counts): each rank's sum is added in float64 and every rank gets the same
    result. A non-finite value on any rank makes the sum non-finite on all of
    them, so a divergence check on the sum stops every rank together.

    Parameters
    ----------
    value : float or array-like
    ctx : DistributedContext or None
        None: ``value`` as a float or a float64 array.

    Returns
    -------
    total : float or ndarray of float64
        A float if ``value`` is a scalar.
    """
    array = np.asarray(value, dtype=np.float64)
    if ctx is not None and ctx.world_size > 1:
        tensor = torch.from_numpy(array.copy()).to(ctx.device)
        array = _all_reduce_in_place(tensor, ctx.world_size, "all_reduce").cpu().numpy()
    return float(array) if array.ndim == 0 else array


def gather_moments(x, ctx):
    """Row count, mean and scatter matrix of the rows of all ranks.

    Each rank reduces its own rows to ``(n, mean, scatter)``; the ranks
    exchange these ``1 + d + d**2`` numbers only and combine them with the
    pairwise update of Chan, Golub and LeVeque, which does not lose the
    precision that summing raw squares would. Every rank gets the same
    result.

    Parameters
    ----------
    x : array-like of shape (n_rows, n_features)
        This rank's rows (may be empty).
    ctx : DistributedContext or None

    Returns
    -------
    n_samples : int
    mean : ndarray of shape (n_features,)
    scatter : ndarray of shape (n_features, n_features)
        ``sum_i (x_i - mean)(x_i - mean)^T``: ``scatter / n_samples`` is the
        population covariance (``np.var`` on its diagonal), ``scatter /
        (n_samples - 1)`` the sample one (``np.cov``).
    """
    x = np.asarray(x, dtype=np.float64)
    n_features = x.shape[1]
    n = len(x)
    mean = x.mean(axis=0) if n else np.zeros(n_features)
    centred = x - mean
    scatter = centred.T @ centred
    if ctx is None or ctx.world_size == 1:
        return n, mean, scatter
    packed = torch.from_numpy(np.concatenate([[n], mean, scatter.ravel()])).to(ctx.device)
    every = torch.empty((ctx.world_size, packed.numel()), dtype=torch.float64, device=ctx.device)
    dist.all_gather(list(every.unbind(0)), packed)
    n_bytes = packed.numel() * 8 * (ctx.world_size - 1)
    _record("all_gather", n_bytes, n_bytes)
    every = every.cpu().numpy()
    counts = every[:, 0]
    means = every[:, 1 : 1 + n_features]
    scatters = every[:, 1 + n_features :].reshape(-1, n_features, n_features)
    total = counts.sum()
    if total == 0:
        return 0, np.zeros(n_features), np.zeros((n_features, n_features))
    mean = counts @ means / total
    offsets = means - mean
    scatter = scatters.sum(axis=0) + (offsets * counts[:, None]).T @ offsets
    return int(total), mean, scatter


# ------------------------------------------------------ batch statistics
#: The context whose ranks' batches form one batch (None: this process's).
_BATCH_GROUP = ContextVar("skdiffclust_batch_group", default=None)


@contextmanager
def synchronized_batches(ctx):
    """Inside the block, :func:`batch_mean_and_variance` and
    :func:`batch_covariance` reduce over the current batch of every rank, as
    if the batches formed one.

    A data-parallel step averages the gradients of ``p`` batches, which is
    the gradient of one batch ``p`` times larger only for a loss that is a
    mean over rows. A loss built on batch statistics (the centre and scale of
    a batch, the covariance of its codes) changes its value with the batch
    size; under this block its statistics are those of the whole step's
    batch, and the averaged gradient is that of one process with
    ``p * batch_size`` rows. Every rank must then run the same forward and
    backward passes, in the same order (as DDP already requires).

    Parameters
    ----------
    ctx : DistributedContext or None
        None or a world of one: the statistics stay local.
    """
    token = _BATCH_GROUP.set(ctx if ctx is not None and ctx.world_size > 1 else None)
    try:
        yield
    finally:
        _BATCH_GROUP.reset(token)


class _AllReduceSum(torch.autograd.Function):
    """A sum over the ranks whose backward pass sums the gradients too.

    Every rank's loss depends on every rank's input through the sum, so the
    gradient of an input is the sum over the ranks of the gradients of their
    losses with respect to the sum; DDP then averages the parameter gradients
    over the ranks, as it does for any loss.
    """

    @staticmethod
    def forward(function_ctx, tensor, world_size):
        function_ctx.world_size = world_size
        return _all_reduce_in_place(tensor.detach().clone(), world_size, "batch_all_reduce")

    @staticmethod
    def backward(function_ctx, grad):
        grad = grad.contiguous().clone()
        return _all_reduce_in_place(grad, function_ctx.world_size, "batch_all_reduce"), None


def _sums(x, ctx, *, second_moment):
    """Over every rank's rows, in one collective: the row count, the sum of
    ``x`` and the sum of its squares (``"diagonal"``) or outer products
    (``"full"``), accumulated in float64; differentiable."""
    x64 = x.double()
    if second_moment == "full":
        squares = (x64[:, :, None] * x64[:, None, :]).sum(dim=0)
    else:
        squares = (x64**2).sum(dim=0)
    local = torch.cat([x64.new_full((1,), x.shape[0]), x64.sum(dim=0), squares.flatten()])
    total = _AllReduceSum.apply(local, ctx.world_size)
    n_rows, n_features = total[0], x.shape[1]
    return n_rows, total[1 : 1 + n_features], total[1 + n_features :].reshape(squares.shape)


def batch_mean_and_variance(x, *, correction=1):
    """``x.mean(dim=0)`` and ``x.var(dim=0, correction=correction)``, over the
    batches of every rank under :func:`synchronized_batches`; differentiable.

    Under :func:`synchronized_batches`, one collective brings the count, sum
    and sum of squares of every rank's rows, accumulated in float64 so that
    the one-pass variance keeps float32's precision for codes up to about
    10^4 standard deviations from the origin.

    Parameters
    ----------
    x : torch.Tensor of shape (n_rows, n_features)
    correction : int, default=1
        Subtracted from the row count in the variance's denominator (0: biased).

    Returns
    -------
    mean, variance : torch.Tensor of shape (n_features,)
    """
    ctx = _BATCH_GROUP.get()
    if ctx is None:
        return x.mean(dim=0), x.var(dim=0, correction=correction)
    n_rows, total, squares = _sums(x, ctx, second_moment="diagonal")
    mean = total / n_rows
    variance = (squares - n_rows * mean**2) / (n_rows - correction)
    return mean.to(x.dtype), variance.to(x.dtype)


def batch_covariance(x):
    """The unbiased covariance matrix of the rows of ``x``, over the batches
    of every rank under :func:`synchronized_batches`; differentiable.

    Under :func:`synchronized_batches`, one collective brings the count, sum
    and sum of outer products of every rank's rows (float64, as in
    :func:`batch_mean_and_variance`).

    Parameters
    ----------
    x : torch.Tensor of shape (n_rows, n_features)

    Returns
    -------
    covariance : torch.Tensor of shape (n_features, n_features)
    """
    ctx = _BATCH_GROUP.get()
    if ctx is None:
        centered = x - x.mean(dim=0)
        return centered.T @ centered / (x.shape[0] - 1)
    n_rows, total, scatter = _sums(x, ctx, second_moment="full")
    mean = total / n_rows
    return ((scatter - n_rows * torch.outer(mean, mean)) / (n_rows - 1)).to(x.dtype)


# -------------------------------------------------------------------- DDP
def _counting_allreduce_hook(process_group, bucket):
    """DDP's default all-reduce, plus a record of the bucket's bytes."""
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    world_size = dist.get_world_size(process_group)
    buffer = bucket.buffer()
    n_bytes = allreduce_bytes(buffer.numel() * buffer.element_size(), world_size)
    _record("ddp_allreduce", n_bytes, n_bytes)
    return default_hooks.allreduce_hook(process_group, bucket)


#: Whether this torch's DistributedDataParallel names ``broadcast_buffers``
#: ``forward_sync_buffers`` (and warns on the old name).
_DDP_HAS_FORWARD_SYNC_BUFFERS = (
    "forward_sync_buffers"
    in inspect.signature(torch.nn.parallel.DistributedDataParallel.__init__).parameters
)


def wrap_ddp(module, ctx, *, count_bytes=False, **ddp_kwargs):
    """``module`` in :class:`~torch.nn.parallel.DistributedDataParallel`.

    The wrapper broadcasts rank 0's parameters and buffers when it is built,
    then averages the gradients over the ranks in every backward pass, so
    that every rank's optimizer takes the same step. The forward pass must go
    through the wrapper for that; inference can use :func:`unwrap`.

    Parameters
    ----------
    module : torch.nn.Module
        Moved to ``ctx.device`` (in place).
    ctx : DistributedContext or None
        None, a world of one, or a module without trainable parameters:
        ``module`` is returned unwrapped (DDP has nothing to synchronise).
    count_bytes : bool, default=False
        Record the gradient all-reduce of every bucket in the active
        :func:`count_communication` logs (through a comm hook that does what
        DDP's default does).
    **ddp_kwargs
        Passed to DistributedDataParallel, e.g. ``find_unused_parameters=True``
        for a loss that leaves some parameters without a gradient (a
        log-variance head unused in pretraining), ``broadcast_buffers=False``.

    Returns
    -------
    module : torch.nn.Module
    """
    if ctx is None or ctx.world_size == 1:
        return module
    if not any(p.requires_grad for p in module.parameters()):
        return module
    module.to(ctx.device)
    if ctx.device.type == "cuda":
        ddp_kwargs.setdefault("device_ids", [ctx.device.index])
        ddp_kwargs.setdefault("output_device", ctx.device.index)
    else:
        ddp_kwargs.setdefault("device_ids", None)
    if "broadcast_buffers" in ddp_kwargs and _DDP_HAS_FORWARD_SYNC_BUFFERS:
        # Its newer name; both keep the buffers of rank 0 at construction.
        ddp_kwargs["forward_sync_buffers"] = ddp_kwargs.pop("broadcast_buffers")
    wrapped = torch.nn.parallel.DistributedDataParallel(module, **ddp_kwargs)
    if count_bytes:
        wrapped.register_comm_hook(None, _counting_allreduce_hook)
    return wrapped


def unwrap(module):
    """The module inside a DistributedDataParallel wrapper, or ``module`` itself."""
    if isinstance(module, torch.nn.parallel.DistributedDataParallel):
        return module.module
    return module
