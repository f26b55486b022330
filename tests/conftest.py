"""Test configuration: one torch thread and a fast, derandomised hypothesis profile."""

import torch
from hypothesis import HealthCheck, settings

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
