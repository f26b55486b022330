"""Test configuration: one torch thread, a fast, derandomised hypothesis profile,
and the small fitted ClusterDDPM that several test files read."""

import pytest
import torch
from _estimators import blobs, small
from hypothesis import HealthCheck, settings

from skdiffclust import ClusterDDPM

# The networks under test are tiny: one thread is faster than several, and the
# suite shares a small machine with other jobs.
torch.set_num_threads(1)

settings.register_profile(
    "skdiffclust",
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("skdiffclust")


@pytest.fixture(scope="session")
def fitted_cluster_ddpm():
    """``(model, X)``: a small ClusterDDPM fitted on ``blobs()``. Tests must not
    modify it (clone it to refit)."""
    X, _ = blobs()
    return small(ClusterDDPM).fit(X), X
