"""The speed benchmark's measurements (benchmarks/speed.py), on tiny settings."""

import pickle

import pytest
from _estimators import blobs, small

from benchmarks.speed import StepTimer, e_step_seconds, inference_throughput
from skdiffclust import ClusterDDPM


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_step_timer_times_the_em_steps_and_counts_one():
    X, _ = blobs()
    timer = StepTimer()
    model = small(ClusterDDPM, n_iter=3, batch_size=20, callbacks=[timer]).fit(X)

    full_batches = len(X) // 20  # 60 rows, 3 batches per epoch
    # The first EM step is a warm-up and the second is counted, not timed.
    assert len(timer.seconds) == 3 * full_batches - 2
    assert all(seconds > 0 for seconds in timer.seconds)
    assert timer.flops > 0
    rate, mean_rate = timer.rates()
    assert rate > 0 and mean_rate > 0
    pickle.dumps(model)  # the counter is dropped after its step


def test_step_timer_without_a_timed_step_raises():
    timer = StepTimer()
    timer.seconds, timer.batch_size = [], 32
    with pytest.raises(RuntimeError, match="no EM step"):
        timer.rates()


def test_inference_throughput_and_e_step(fitted_cluster_ddpm):
    model, X = fitted_cluster_ddpm
    r_transform, r_predict, flops = inference_throughput(model, X, reps=1)
    assert r_transform > 0 and r_predict > 0 and flops > 0
    seconds, n_iter, seconds_all = e_step_seconds(model.mixture_, 200, reps=1)
    assert seconds > 0 and seconds_all > 0 and 1 <= n_iter <= 20
