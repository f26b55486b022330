"""The torch.distributed helpers, on two gloo processes of this machine.

Starting a process that imports torch takes seconds, so the two ranks are
started once for the module (the ``world`` fixture) and run one scenario per
test: each test sends a scenario name to both ranks, which run it together
and send back their results.
"""

import queue
import traceback
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchmarks.distributed_gather import free_port
from skdiffclust.distributed import (
    allreduce_bytes,
    count_communication,
    ddp_bytes_per_step,
    distributed_context,
    gather_moments,
    gather_rows,
    gather_subsample,
    rank_seed,
    shard_indices,
    unwrap,
    wrap_ddp,
)

WORLD_SIZE = 2

#: Seconds a scenario may take before the test fails (a hung collective).
SCENARIO_TIMEOUT = 60

#: Seconds for both ranks to start and join the process group.
STARTUP_TIMEOUT = 120


def _global_codes(n_samples, n_features=3):
    """The same float64 "codes" on every rank: row i holds i, i + 0.5, ..."""
    return np.arange(n_samples, dtype=np.float64)[:, None] + 0.5 * np.arange(n_features)


# ------------------------------------------------------------- scenarios
# Each runs on every rank with the rank's DistributedContext; its return value
# is sent back to the test.
def _scenario_context(ctx):
    return ctx


def _scenario_gather_rows(ctx, n_samples):
    Z = _global_codes(n_samples)
    rows = shard_indices(n_samples, ctx.rank, ctx.world_size)
    with count_communication() as log:
        everywhere = gather_rows(Z[rows], ctx)
        on_zero = gather_rows(torch.from_numpy(Z[rows]), ctx, dst=0)
    return {
        "n_local": len(rows),
        "everywhere": everywhere,
        "on_zero": on_zero,
        "received": dict(log.received),
    }


def _scenario_gather_subsample(ctx, n_samples, max_samples, seed):
    Z = _global_codes(n_samples)
    rows = shard_indices(n_samples, ctx.rank, ctx.world_size)
    with count_communication() as log:
        subsample = gather_subsample(Z[rows], max_samples, ctx, np.random.RandomState(seed))
    return {
        "subsample": subsample,
        "gather_sent": log.sent["gather"],
        "gather_received": log.received["gather"],
    }


def _scenario_broadcast_mixture(ctx):
    from sklearn.datasets import make_blobs

    from skdiffclust._mixture import fit_mixture, make_mixture
    from skdiffclust.distributed import broadcast_object

    Z, _ = make_blobs(300, 2, centers=3, random_state=ctx.rank)  # different data per rank
    mixture = None
    if ctx.is_main:
        mixture = make_mixture(
            4,
            covariance_type="full",
            weight_concentration_prior_type="dirichlet_process",
            weight_concentration_prior=None,
            random_state=0,
        )
        mixture = fit_mixture(mixture, Z)
    mixture = broadcast_object(mixture, ctx)
    grid = np.mgrid[-10:10:25j, -10:10:25j].reshape(2, -1).T
    return {"predict": mixture.predict(grid), "proba": mixture.predict_proba(grid)}


def _scenario_ddp(ctx, n_steps):
    # A different initialisation on each rank: DDP must replace it by rank 0's.
    torch.manual_seed(rank_seed(0, ctx.rank))
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 1))
    initial = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    ddp = wrap_ddp(model, ctx, count_bytes=True)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=1e-2)
    X = torch.randn(8 * n_steps * ctx.world_size, 4, generator=torch.Generator().manual_seed(1))
    rows = shard_indices(len(X), ctx.rank, ctx.world_size, uneven="pad", seed=2)
    with count_communication() as log:
        for batch in torch.as_tensor(rows).split(8):
            optimizer.zero_grad()
            loss = (ddp(X[batch]) ** 2).mean()
            loss.backward()
            optimizer.step()
    return {
        "initial": initial,
        "final": torch.nn.utils.parameters_to_vector(unwrap(ddp).parameters()).detach(),
        "unwrapped_is_model": unwrap(ddp) is model,
        "ddp_bytes": log.sent["ddp_allreduce"],
        "bytes_per_step": ddp_bytes_per_step(model, ctx.world_size),
    }


def _scenario_rank_seeds(ctx, seed):
    generator = torch.Generator().manual_seed(rank_seed(seed, ctx.rank))
    return torch.randperm(20, generator=generator)


def _scenario_reductions(ctx):
    from skdiffclust.distributed import all_reduce_sum

    Z = _global_codes(11) ** 1.5  # not linear in the row: a non-trivial covariance
    rows = shard_indices(11, ctx.rank, ctx.world_size)
    return {
        "sum": all_reduce_sum(np.array([len(rows), ctx.rank]), ctx),
        "scalar": all_reduce_sum(float(ctx.rank), ctx),
        "non_finite": all_reduce_sum(np.inf if ctx.rank == 1 else 1.0, ctx),
        "moments": gather_moments(Z[rows], ctx),
        "empty_moments": gather_moments(Z[rows][:0] if ctx.rank else Z, ctx),
    }


class _LinearGaussian(torch.nn.Module):
    """A linear Gaussian encoder: means and log-variances of the rows."""

    def __init__(self):
        super().__init__()
        self.mean = torch.nn.Linear(5, 3)
        self.log_var = torch.nn.Linear(5, 3)

    def forward(self, x):
        return self.mean(x), self.log_var(x)


def _batch_statistics_step(encoder, X):
    """A loss on batch statistics (the standardisation and the covariance
    penalty), its value and the gradients of the encoder's parameters."""
    from skdiffclust.losses import latent_spread_penalty

    mean, log_var = encoder(X)
    loss = latent_spread_penalty(3.0 * mean) + (mean**2).mean() + log_var.exp().mean()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in unwrap(encoder).parameters()]


def _statistics_encoder():
    from skdiffclust.nn import StandardizedGaussianEncoder

    torch.manual_seed(3)
    return StandardizedGaussianEncoder(_LinearGaussian(), 3)


def _statistics_batch():
    X = torch.randn(24, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    return (X * torch.arange(1.0, 6.0, dtype=torch.float64) + 2.0).float()


def _scenario_batch_statistics(ctx, synchronized):
    from skdiffclust.distributed import synchronized_batches

    X = _statistics_batch()
    rows = torch.as_tensor(shard_indices(len(X), ctx.rank, ctx.world_size))
    encoder = wrap_ddp(_statistics_encoder(), ctx)
    with count_communication() as log, synchronized_batches(ctx if synchronized else None):
        loss, grads = _batch_statistics_step(encoder, X[rows])
    return {
        "loss": loss,
        "grads": grads,
        "running_mean": unwrap(encoder).running_mean.clone(),
        "batch_bytes": log.sent.get("batch_all_reduce", 0.0),
    }


def _scenario_fit(ctx, method, e_step_max_samples):
    """A small data-parallel fit; the pickled model and what it predicts."""
    import pickle

    from _estimators import small
    from sklearn.datasets import make_blobs

    from skdiffclust import cluster_ddpm

    X, _ = make_blobs(n_samples=121, centers=3, n_features=4, cluster_std=0.5, random_state=0)
    name = "ClusterDDPM" if method == "ClusterDDPM" else "DeepDPGMMClusterer"
    model = small(name, pretrain_epochs=4, batch_size=16, e_step_max_samples=e_step_max_samples)
    # Whether each of this rank's network steps had the kept partition's components.
    hard_steps = []
    original_kl = cluster_ddpm.mixture_kl

    def recording_kl(z, mean, log_var, mixture, components=None):
        hard_steps.append(components is not None)
        return original_kl(z, mean, log_var, mixture, components)

    cluster_ddpm.mixture_kl = recording_kl
    try:
        with count_communication() as log:
            model.fit(X)
    finally:
        cluster_ddpm.mixture_kl = original_kl
    return {
        "hard_steps": hard_steps,
        "model": pickle.dumps(model),
        "transform": model.transform(X),
        "labels": model.labels_,
        "predict": model.predict(X),
        "weights": model.mixture_.weights_,
        "history": model.history_["loss"],
        "ddp_bytes": log.sent.get("ddp_allreduce", 0.0),
        "X": X,
    }


def _scenario_divergence(ctx):
    """A fit whose loss becomes NaN on rank 1 only, in its third step."""
    from _estimators import small
    from sklearn.datasets import make_blobs

    from skdiffclust import DeepDPGMMClusterer
    from skdiffclust._base import TrainingDivergedError

    calls = []  # outside the estimator, whose state the failed fit puts back

    class DivergesOnRankOne(DeepDPGMMClusterer):
        def _pretrain_loss(self, x):
            calls.append(x.shape[0])
            loss = super()._pretrain_loss(x)
            return loss * float("nan") if ctx.rank == 1 and len(calls) == 3 else loss

    X, _ = make_blobs(n_samples=120, centers=3, n_features=4, random_state=0)
    model = small(DivergesOnRankOne, batch_size=16)
    try:
        model.fit(X)
    except TrainingDivergedError as exc:
        return {"error": str(exc), "steps": len(calls), "fitted": hasattr(model, "mixture_")}
    return {"error": None}


def _scenario_too_few_rows(ctx):
    from _estimators import small

    X = np.arange(6.0).reshape(3, 2) ** 2
    try:
        small("DeepDPGMMClusterer").fit(X)
    except ValueError as exc:
        return str(exc)
    return None


def _scenario_pretrained_on_fixed_batches(ctx):
    """DeepDPGMM pretrained (a loss without noise) on fixed steps of 16 rows,
    each rank taking its share of every step; its weights and codes."""
    from _estimators import small
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=64, centers=3, n_features=4, random_state=0)
    world_size = 1 if ctx is None else ctx.world_size
    steps = torch.randperm(64, generator=torch.Generator().manual_seed(5)).split(16)
    model = small("DeepDPGMMClusterer", pretrain_epochs=3, n_iter=0, batch_size=16 // world_size)
    if ctx is not None:
        model._minibatches = lambda n, device: [s.tensor_split(world_size)[ctx.rank] for s in steps]
    else:
        model._minibatches = lambda n, device: list(steps)
    model.fit(X)
    weights = {k: v.clone() for k, v in model.encoder_.state_dict().items()}
    return {"weights": weights, "transform": model.transform(X)}


def _worker(rank, world_size, port, tasks, results):
    torch.set_num_threads(1)
    # Imported before the first scenario, so that its time is its own.
    import sklearn.mixture  # noqa: F401
    from torch.nn.parallel import DistributedDataParallel  # noqa: F401

    try:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=SCENARIO_TIMEOUT),
        )
    except Exception as exc:  # reported to the fixture, which skips
        results.put((rank, "init failed", repr(exc)))
        return
    results.put((rank, "ready", None))
    ctx = distributed_context()
    while True:
        name, args = tasks.get()
        if name is None:
            break
        try:
            results.put((rank, "ok", globals()[f"_scenario_{name}"](ctx, *args)))
        except Exception:
            results.put((rank, "error", traceback.format_exc()))
    dist.destroy_process_group()
    results.put((rank, "closed", None))


class _World:
    """Two ranks waiting for scenarios."""

    def __init__(self):
        context = mp.get_context("spawn")
        self.tasks = [context.Queue() for _ in range(WORLD_SIZE)]
        self.results = context.Queue()
        port = free_port()
        self.processes = [
            context.Process(
                target=_worker, args=(rank, WORLD_SIZE, port, self.tasks[rank], self.results)
            )
            for rank in range(WORLD_SIZE)
        ]
        for process in self.processes:
            process.daemon = True
            process.start()
        self.broken = None
        statuses = self._collect(STARTUP_TIMEOUT)
        failures = [message for status, message in statuses if status != "ready"]
        if failures:
            self.broken = f"the gloo process group could not start: {failures[0]}"

    def _collect(self, timeout):
        by_rank = {}
        try:
            while len(by_rank) < WORLD_SIZE:
                rank, status, payload = self.results.get(timeout=timeout)
                by_rank[rank] = (status, payload)
        except queue.Empty:
            return [("timeout", f"no answer within {timeout} s")] * WORLD_SIZE
        return [by_rank[rank] for rank in range(WORLD_SIZE)]

    def run(self, name, *args):
        """Run ``_scenario_<name>(ctx, *args)`` on every rank; the results by rank."""
        if self.broken:
            pytest.fail(f"the ranks are unusable after an earlier failure: {self.broken}")
        for task in self.tasks:
            task.put((name, args))
        statuses = self._collect(SCENARIO_TIMEOUT)
        for rank, (status, payload) in enumerate(statuses):
            if status != "ok":
                self.broken = f"{name} on rank {rank}: {status}"
                pytest.fail(f"scenario {name} failed on rank {rank} ({status}):\n{payload}")
        return [payload for _, payload in statuses]

    def close(self):
        for task in self.tasks:
            task.put((None, None))
        if not self.broken:
            self._collect(SCENARIO_TIMEOUT)
        # Past destroy_process_group, nothing is left to lose: an interpreter
        # that imported torch takes seconds to exit.
        for process in self.processes:
            process.terminate()
            process.join(timeout=10)


@pytest.fixture(scope="module")
def world():
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build of torch")
    if not dist.is_backend_available("gloo"):
        pytest.skip("torch.distributed has no gloo backend in this build of torch")
    world = _World()
    try:
        if world.broken:
            pytest.skip(world.broken)
        yield world
    finally:
        world.close()


# --------------------------------------------------- single-process tests
@pytest.mark.parametrize("n_samples", [0, 1, 7, 10, 11, 100])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [None, 0])
def test_shards_cover_every_row_once(n_samples, world_size, seed):
    shards = [shard_indices(n_samples, r, world_size, seed=seed) for r in range(world_size)]
    np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.arange(n_samples))
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1
    if seed is None:  # blocks of the row order: rank order is row order
        np.testing.assert_array_equal(np.concatenate(shards), np.arange(n_samples))


@pytest.mark.parametrize("n_samples", [7, 10, 11, 100])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [None, 3])
def test_pad_and_drop_give_equal_shards(n_samples, world_size, seed):
    keep, pad, drop = (
        [shard_indices(n_samples, r, world_size, uneven=mode, seed=seed) for r in range(world_size)]
        for mode in ("keep", "pad", "drop")
    )
    assert {len(shard) for shard in pad} == {-(-n_samples // world_size)}
    assert {len(shard) for shard in drop} == {n_samples // world_size}
    for kept, padded, dropped in zip(keep, pad, drop, strict=True):
        # Padding repeats a row of the shard itself; dropping keeps a prefix.
        assert set(padded) == set(kept)
        np.testing.assert_array_equal(dropped, kept[: len(dropped)])
    # Every row is in the padded epoch; the dropped one misses fewer than world_size.
    assert set(np.concatenate(pad)) == set(range(n_samples))
    assert n_samples - len(set(np.concatenate(drop))) == n_samples % world_size


def test_equal_shards_give_equal_step_counts():
    # The rule of the fit loop: batches of batch_size, a last batch of one dropped.
    def n_steps(n_rows, batch_size):
        n_batches = -(-n_rows // batch_size)
        return n_batches - (n_batches > 1 and n_rows % batch_size == 1)

    for n_samples in range(4, 200):
        for world_size in (2, 3, 4):
            for uneven in ("pad", "drop"):
                sizes = [
                    len(shard_indices(n_samples, r, world_size, uneven=uneven))
                    for r in range(world_size)
                ]
                assert len({n_steps(size, 8) for size in sizes}) == 1


def test_shard_indices_validation():
    with pytest.raises(ValueError, match="rank=2 must be < world_size=2"):
        shard_indices(10, 2, 2)
    with pytest.raises(ValueError, match="uneven"):
        shard_indices(10, 0, 2, uneven="repeat")
    with pytest.raises(ValueError, match="cannot give each"):
        shard_indices(1, 0, 2, uneven="pad")
    with pytest.raises(ValueError, match="world_size"):
        shard_indices(10, 0, 0)


def test_rank_seeds_differ_and_are_reproducible():
    seeds = [rank_seed(42, rank) for rank in range(64)]
    assert len(set(seeds)) == 64
    assert seeds == [rank_seed(42, rank) for rank in range(64)]
    assert seeds[0] == 42  # one process draws what a plain fit draws
    assert all(0 <= seed < 2**31 for seed in seeds)
    assert rank_seed(43, 1) != rank_seed(42, 1)
    with pytest.raises(ValueError, match="rank"):
        rank_seed(0, -1)


def test_without_process_group_everything_is_local():
    assert distributed_context() is None
    Z = _global_codes(20)
    assert gather_rows(Z, None) is Z
    np.testing.assert_array_equal(
        gather_subsample(Z, 5, None, 0), Z[np.random.RandomState(0).choice(20, 5, replace=False)]
    )
    model = torch.nn.Linear(2, 2)
    assert wrap_ddp(model, None) is model and unwrap(model) is model
    n, mean, scatter = gather_moments(Z, None)
    assert n == 20
    np.testing.assert_allclose(scatter / (n - 1), np.cov(Z, rowvar=False))


def test_allreduce_bytes_formula():
    assert allreduce_bytes(1000, 1) == 0
    assert allreduce_bytes(1000, 2) == 1000
    assert allreduce_bytes(1000, 4) == 1500
    model = torch.nn.Linear(3, 2)  # 8 float32 parameters
    assert ddp_bytes_per_step(model, 2) == 32
    batch_norm = torch.nn.BatchNorm1d(4)  # 8 parameters; 2 x 4 float32 + 1 int64 buffers
    assert ddp_bytes_per_step(batch_norm, 2) == 32 + 40
    assert ddp_bytes_per_step(batch_norm, 2, broadcast_buffers=False) == 32


# ------------------------------------------------------ two-process tests
def test_context_of_each_rank(world):
    for rank, ctx in enumerate(world.run("context")):
        assert (ctx.rank, ctx.world_size, ctx.backend) == (rank, WORLD_SIZE, "gloo")
        assert ctx.device == torch.device("cpu")
        assert ctx.is_main == (rank == 0)


@pytest.mark.parametrize("n_samples", [11, 1])
def test_gather_rows_returns_global_order(world, n_samples):
    Z = _global_codes(n_samples)
    results = world.run("gather_rows", n_samples)
    for rank, result in enumerate(results):
        np.testing.assert_array_equal(result["everywhere"], Z)
        if rank == 0:
            assert isinstance(result["on_zero"], torch.Tensor)
            np.testing.assert_array_equal(result["on_zero"].numpy(), Z)
        else:
            assert result["on_zero"] is None
    # Only the other rank's rows arrive, once, without padding.
    row_bytes = Z[0].nbytes
    for rank, result in enumerate(results):
        other = n_samples - result["n_local"]
        assert result["received"]["broadcast"] == other * row_bytes
        assert result["received"]["gather"] == (other * row_bytes if rank == 0 else 0)


def test_gather_subsample_sends_only_the_subsample(world):
    n_samples, max_samples, seed = 1000, 100, 7
    Z = _global_codes(n_samples)
    expected = Z[np.random.RandomState(seed).choice(n_samples, max_samples, replace=False)]
    zero, one = world.run("gather_subsample", n_samples, max_samples, seed)
    # The rows a single process would draw, in its order.
    np.testing.assert_array_equal(zero["subsample"], expected)
    assert one["subsample"] is None
    # Rank 1 sends exactly its chosen rows (those of the upper half), no more.
    row_bytes = Z[0].nbytes
    from_one = np.sum(expected[:, 0] >= n_samples // 2)
    assert one["gather_sent"] == zero["gather_received"] == from_one * row_bytes
    assert from_one < max_samples


def test_gather_subsample_of_few_rows_gathers_all(world):
    zero, one = world.run("gather_subsample", 30, 100, 0)
    np.testing.assert_array_equal(zero["subsample"], _global_codes(30))
    assert one["subsample"] is None


def test_broadcast_mixture_is_identical_on_every_rank(world):
    zero, one = world.run("broadcast_mixture")
    np.testing.assert_array_equal(zero["predict"], one["predict"])
    np.testing.assert_array_equal(zero["proba"], one["proba"])
    assert len(np.unique(zero["predict"])) > 1


def test_ddp_keeps_parameters_identical(world):
    n_steps = 4
    zero, one = world.run("ddp", n_steps)
    assert not torch.equal(zero["initial"], one["initial"])  # different initialisations
    assert not torch.equal(zero["final"], zero["initial"])  # trained
    assert torch.equal(zero["final"], one["final"])  # then kept in step, bit for bit
    assert zero["unwrapped_is_model"] and one["unwrapped_is_model"]
    # The comm hook saw every step's gradients: the formula, exactly.
    n_parameters = 4 * 8 + 8 + 8 * 1 + 1
    expected = n_steps * allreduce_bytes(4 * n_parameters, WORLD_SIZE)
    assert zero["ddp_bytes"] == one["ddp_bytes"] == expected
    assert zero["bytes_per_step"] * n_steps == expected


def test_rank_seeds_give_different_reproducible_streams(world):
    first = world.run("rank_seeds", 5)
    second = world.run("rank_seeds", 5)
    assert not torch.equal(first[0], first[1])
    for rank in range(WORLD_SIZE):
        assert torch.equal(first[rank], second[rank])
        expected = torch.randperm(20, generator=torch.Generator().manual_seed(rank_seed(5, rank)))
        assert torch.equal(first[rank], expected)


def test_reductions_agree_with_numpy(world):
    Z = _global_codes(11) ** 1.5
    for result in world.run("reductions"):
        np.testing.assert_array_equal(result["sum"], [11, 1])
        assert result["scalar"] == 1.0
        assert result["non_finite"] == np.inf  # a divergence on one rank is seen by all
        n, mean, scatter = result["moments"]
        assert n == 11
        np.testing.assert_allclose(mean, Z.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(scatter / (n - 1), np.cov(Z, rowvar=False), rtol=1e-10)
        n, mean, scatter = result["empty_moments"]  # rank 1 holds no rows
        assert n == 11
        np.testing.assert_allclose(scatter / n, np.cov(Z, rowvar=False, ddof=0), rtol=1e-10)


def test_synchronized_batch_statistics_give_the_gradient_of_the_whole_batch(world):
    # One process, the whole batch of 24 rows: the reference.
    loss, grads = _batch_statistics_step(_statistics_encoder(), _statistics_batch())
    results = world.run("batch_statistics", True)
    # The ranks' mean loss is the whole batch's (its statistics span both
    # halves), and DDP's average of their gradients is the whole batch's.
    torch.testing.assert_close(sum(r["loss"] for r in results) / WORLD_SIZE, loss)
    for result in results:
        for got, expected in zip(result["grads"], grads, strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
        assert result["batch_bytes"] > 0
    # Without the block each rank standardises its own 12 rows: another gradient.
    local = world.run("batch_statistics", False)
    assert local[0]["batch_bytes"] == 0
    assert not torch.allclose(local[0]["grads"][0], grads[0], rtol=1e-3)


def test_batch_statistics_are_local_outside_a_process_group():
    from skdiffclust.distributed import (
        batch_covariance,
        batch_mean_and_variance,
        synchronized_batches,
    )

    X = _statistics_batch()
    with synchronized_batches(None):
        mean, variance = batch_mean_and_variance(X, correction=0)
        torch.testing.assert_close(mean, X.mean(dim=0), rtol=0, atol=0)
        torch.testing.assert_close(variance, X.var(dim=0, correction=0), rtol=0, atol=0)
        torch.testing.assert_close(batch_covariance(X), torch.cov(X.T), rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("method", ["ClusterDDPM", "DeepDPGMM"])
@pytest.mark.parametrize("e_step_max_samples", [None, 50])
def test_data_parallel_fit_gives_every_rank_the_same_model(world, method, e_step_max_samples):
    import pickle

    from sklearn.datasets import make_blobs
    from sklearn.metrics import adjusted_rand_score

    first, second = world.run("fit", method, e_step_max_samples)
    # The same mixture and labels on both ranks, and the same loss history.
    np.testing.assert_array_equal(first["labels"], second["labels"])
    np.testing.assert_array_equal(first["weights"], second["weights"])
    np.testing.assert_array_equal(first["history"], second["history"])
    np.testing.assert_array_equal(first["labels"], first["predict"])
    if method == "ClusterDDPM":
        # Every rank's network steps read rank 0's kept UMAP partition.
        assert first["hard_steps"] and all(first["hard_steps"] + second["hard_steps"])
        assert len(first["hard_steps"]) == len(second["hard_steps"])
    # The same networks and buffers: the codes agree to the last bit.
    np.testing.assert_array_equal(first["transform"], second["transform"])
    # The gradients were all-reduced, and the model pickles like a one-process
    # fit: it loads here, outside any process group, and predicts the same.
    assert first["ddp_bytes"] > 0
    model = pickle.loads(first["model"])
    np.testing.assert_array_equal(model.predict(first["X"]), first["labels"])
    _, y = make_blobs(n_samples=121, centers=3, n_features=4, cluster_std=0.5, random_state=0)
    assert adjusted_rand_score(y, first["labels"]) > 0.9


def test_a_divergence_on_one_rank_stops_every_rank_at_the_same_step(world):
    first, second = world.run("divergence")
    for result in (first, second):
        assert result["error"] is not None, "the fit did not stop"
        assert "Training diverged" in result["error"] and "pretraining epoch" in result["error"]
        assert not result["fitted"]  # left as before the fit
    assert first["steps"] == second["steps"] == 3


def test_a_data_parallel_fit_needs_two_rows_per_rank(world):
    for message in world.run("too_few_rows"):
        assert message is not None and "at least 2 samples per process (4)" in message


def test_every_rank_takes_its_share_of_the_same_steps():
    from skdiffclust import DeepDPGMMClusterer
    from skdiffclust.distributed import DistributedContext, batch_order_seed

    def shares(rank, world_size, n_samples, batch_size):
        model = DeepDPGMMClusterer(batch_size=batch_size)
        model._dist = DistributedContext(rank, world_size, "gloo", rank, torch.device("cpu"))
        model._batch_order = torch.Generator().manual_seed(batch_order_seed(7))
        return model._minibatches(n_samples, torch.device("cpu"))

    for n_samples, world_size, batch_size in [(100, 2, 16), (101, 3, 8), (37, 2, 16), (9, 4, 64)]:
        by_rank = [shares(rank, world_size, n_samples, batch_size) for rank in range(world_size)]
        n_steps = {len(batches) for batches in by_rank}
        assert len(n_steps) == 1  # every rank runs the same number of steps
        for step in zip(*by_rank, strict=True):
            sizes = [len(share) for share in step]
            assert min(sizes) >= 2 and max(sizes) - min(sizes) <= 1
            assert sum(sizes) <= world_size * batch_size
        seen = torch.cat([share for step in zip(*by_rank, strict=True) for share in step])
        # Every row at most once per epoch; only a last step too small for
        # two rows per rank is left out.
        assert len(torch.unique(seen)) == len(seen)
        assert n_samples - len(seen) < 2 * world_size


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_data_parallel_steps_train_the_networks_of_one_process(world):
    # The same steps of 16 rows, in one process and shared by two ranks: the
    # same losses (batch statistics included) and gradients, hence the same
    # weights after 12 Adam steps, to float32 rounding. The standardisation
    # removes any shift of the raw means, so the gradient of the mean head's
    # bias is zero up to rounding, which Adam's normalised steps turn into a
    # random walk (followed by the running mean): the codes do not see it.
    one = _scenario_pretrained_on_fixed_batches(None)  # one process
    for result in world.run("pretrained_on_fixed_batches"):
        for name, expected in one["weights"].items():
            if name in ("encoder.mean.bias", "running_mean"):
                continue
            torch.testing.assert_close(
                result["weights"][name], expected, rtol=1e-4, atol=1e-5, msg=name
            )
        np.testing.assert_allclose(result["transform"], one["transform"], rtol=1e-4, atol=1e-4)
