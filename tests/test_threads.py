"""torch's thread count follows threadpoolctl and joblib limits inside fit, predict and sample."""

import numpy as np
import pytest
import torch
from _estimators import small
from sklearn.datasets import make_blobs
from threadpoolctl import threadpool_limits

from skdiffclust import ClusterDDPM
from skdiffclust._threads import limited_torch_threads, thread_limit

#: Smaller still than ``small``'s settings: one epoch of each stage.
TINY = dict(
    n_clusters=2,
    hidden_dims=(8,),
    n_timesteps=5,
    pretrain_epochs=1,
    n_iter=1,
    batch_size=16,
    learning_rate=1e-3,
)


class _Recording(ClusterDDPM):
    """Records torch's thread count in every training step and every encoding."""

    def _pretrain_loss(self, x):
        type(self).seen.append(torch.get_num_threads())
        return super()._pretrain_loss(x)

    def _network_loss(self, x, mixture, components=None):
        type(self).seen.append(torch.get_num_threads())
        return super()._network_loss(x, mixture, components)

    def _encode(self, x):
        type(self).seen.append(torch.get_num_threads())
        return super()._encode(x)


@pytest.fixture
def two_threads(monkeypatch):
    """torch on 2 threads and no limit from the environment; restored afterwards."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def data():
    X, _ = make_blobs(n_samples=40, n_features=3, centers=2, random_state=0)
    return X


@pytest.mark.parametrize("user_api", [None, "blas"])
def test_threadpool_limits_bound_torch_inside_fit(two_threads, data, user_api):
    # user_api="blas" leaves torch's own OpenMP runtime alone: only the
    # context manager brings torch down to the limit.
    _Recording.seen = []
    with threadpool_limits(1, user_api=user_api):
        model = small(_Recording, **TINY).fit(data)
    assert _Recording.seen and set(_Recording.seen) == {1}
    assert torch.get_num_threads() == 2

    _Recording.seen = []
    with threadpool_limits(1, user_api="blas"):
        model.predict(data)
        model.transform(data)
    assert set(_Recording.seen) == {1}
    assert torch.get_num_threads() == 2


def test_environment_limit_bounds_sample(two_threads, data, monkeypatch):
    model = small(ClusterDDPM, **TINY).fit(data)
    seen = []
    original = model.denoiser_.forward

    def forward(*args):
        seen.append(torch.get_num_threads())
        return original(*args)

    monkeypatch.setattr(model.denoiser_, "forward", forward)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what a loky worker sees
    X_new, _ = model.sample(3, n_steps=2)
    assert X_new.shape == (3, 3) and np.all(np.isfinite(X_new))
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2


def test_never_raises_and_restores_after_errors(two_threads, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    with limited_torch_threads():
        assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert thread_limit() == 1
    with pytest.raises(RuntimeError), limited_torch_threads():
        assert torch.get_num_threads() == 1
        raise RuntimeError
    assert torch.get_num_threads() == 2
