"""Peak memory of ``fit`` and ``predict`` compared with the size of ``X``.

Each measurement runs in a fresh Python process, so that the peak resident set
size (``VmHWM``; ``resource.getrusage(...).ru_maxrss`` off Linux) belongs to
that measurement only.
The process first imports everything and builds ``X``, then resets the kernel's
peak-RSS mark (``/proc/self/clear_refs``, Linux); the RSS then is the baseline,
and the growth of the peak during the call is what the call itself needed on
top of ``X`` and the imports.

Usage::

    python benchmarks/memory.py              # the table (about 2 minutes on 2 cores)
    python benchmarks/memory.py --quick      # smaller sizes, a smoke test
"""

import argparse
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

FIT_PARAMS = dict(
    n_clusters=10,
    latent_dim=10,
    hidden_dims=(64,),
    n_timesteps=100,
    pretrain_epochs=1,
    n_iter=1,
    batch_size=256,
    device="cpu",
    random_state=0,
)


def _peak_rss_bytes():
    """Peak RSS of this process.

    ``VmHWM`` of ``/proc/self/status`` where it exists (Linux): it belongs to
    this process's memory map only, while ``getrusage``'s ``ru_maxrss`` also
    keeps the peak of the process this one was forked from before ``exec``.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # Linux reports kilobytes, macOS bytes.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _reset_peak_rss():
    """Reset the kernel's high-water mark to the current RSS (Linux >= 4.0), so
    that the transient peak of the imports does not hide the call's peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _data(n_samples, n_features):
    rng = np.random.RandomState(0)
    centers = rng.uniform(-5, 5, size=(10, n_features))
    X = rng.standard_normal((n_samples, n_features))
    X += centers[rng.randint(10, size=n_samples)]
    return X


def _measure(task, n_samples, n_features, model_path):
    """Run in the child process: one call, print one line of numbers."""
    import torch

    from skdiffclust import ClusterDDPM

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    X = _data(n_samples, n_features)
    if task == "predict":
        with open(model_path, "rb") as f:
            model = pickle.load(f)
    else:
        model = ClusterDDPM(**FIT_PARAMS)
    reset = _reset_peak_rss()
    baseline = _peak_rss_bytes()
    start = time.perf_counter()
    if task == "fit":
        model.fit(X)
    else:
        labels = model.predict(X)
        assert labels.shape == (n_samples,)
    seconds = time.perf_counter() - start
    print(X.nbytes, baseline, _peak_rss_bytes(), seconds, int(reset))


def _run_child(task, n_samples, n_features, model_path):
    out = subprocess.run(
        [sys.executable, __file__, "--child", task, str(n_samples), str(n_features), model_path],
        check=True,
        capture_output=True,
        text=True,
    )
    x_bytes, baseline, peak, seconds, reset = out.stdout.split()
    if reset != "1":
        print("warning: could not reset the peak RSS; the baseline includes the imports' peak")
    return int(x_bytes), int(baseline), int(peak), float(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, n_samples, n_features, model_path = args.child
        _measure(task, int(n_samples), int(n_features), model_path)
        return

    from skdiffclust import ClusterDDPM

    n_features = 50
    n_fit, n_predict = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = os.path.join(tmp, "model.pkl")
        small = ClusterDDPM(**{**FIT_PARAMS, "pretrain_epochs": 1, "n_iter": 0})
        small.fit(_data(2_000, n_features))
        with open(model_path, "wb") as f:
            pickle.dump(small, f)
        rows = [
            ("fit", n_fit, *_run_child("fit", n_fit, n_features, model_path)),
            ("predict", n_predict, *_run_child("predict", n_predict, n_features, model_path)),
        ]

    mb = 2.0**20
    print(f"ClusterDDPM, {n_features} float64 features, {FIT_PARAMS}")
    header = (
        f"{'call':<8} {'rows':>9} {'X (MB)':>8} {'baseline (MB)':>14} {'peak (MB)':>10} "
        f"{'extra (MB)':>11} {'extra / X':>10} {'time (s)':>9}"
    )
    print(header)
    print("-" * len(header))
    for task, n, x_bytes, baseline, peak, seconds in rows:
        extra = peak - baseline
        print(
            f"{task:<8} {n:>9,} {x_bytes / mb:>8.1f} {baseline / mb:>14.1f} {peak / mb:>10.1f} "
            f"{extra / mb:>11.1f} {extra / x_bytes:>10.2f} {seconds:>9.1f}"
        )
    print("baseline: RSS after imports and building X (X included), the peak reset there;")
    print("extra: growth of the peak RSS during the call, i.e. what the call needed besides X.")


if __name__ == "__main__":
    main()
