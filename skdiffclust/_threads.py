"""Keep torch's thread count within the limits set by threadpoolctl and joblib.

``GridSearchCV(n_jobs=4)`` on a 4-core machine runs 4 fits at once; if each of
them also runs torch on 4 threads, the 16 threads fight over 4 cores and the
search runs slower than with ``n_jobs=1``. joblib's workers announce their
share of the cores through the environment (``OMP_NUM_THREADS`` and the other
``*_NUM_THREADS`` variables, set from ``inner_max_num_threads``), and
``threadpoolctl.threadpool_limits`` announces a limit by setting the BLAS and
OpenMP libraries' thread counts. :func:`limited_torch_threads` reads both and
lowers torch's intra-op thread count to the smallest of them for the duration
of a ``fit``, ``transform``/``predict`` or ``sample``, and puts the previous
count back afterwards. It never raises the count above the user's setting.
"""

import os
from contextlib import contextmanager

import torch

#: Environment variables through which joblib (loky's ``inner_max_num_threads``)
#: and users cap the threads of native libraries.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
)

_controller = None


def _threadpool_limits():
    """Thread counts of the loaded BLAS and OpenMP libraries, as threadpoolctl sees them.

    The library scan is done once; reading the counts afterwards costs a few
    microseconds, so this can run on every call to ``predict``.
    """
    global _controller
    try:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        info = _controller.info()
    except Exception:  # threadpoolctl missing or failing: no limit from it
        return []
    limits = []
    for entry in info:
        if entry.get("threading_layer") == "disabled":
            continue  # a single-threaded build, not a limit anyone set
        n = entry.get("num_threads")
        if isinstance(n, int) and n >= 1:
            limits.append(n)
    return limits


def _environment_limits():
    limits = []
    for name in THREAD_ENV_VARS:
        value = os.environ.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) >= 1:
            limits.append(int(value))
    return limits


def thread_limit():
    """The smallest thread limit set through threadpoolctl or the environment, or None."""
    limits = _threadpool_limits() + _environment_limits()
    return min(limits) if limits else None


@contextmanager
def limited_torch_threads():
    """Run the block with ``torch.get_num_threads() <= thread_limit()``.

    Lowers torch's thread count when a lower limit is in force and restores the
    previous count on exit; never raises it.
    """
    previous = torch.get_num_threads()
    limit = thread_limit()
    if limit is None or limit >= previous:
        yield
        return
    torch.set_num_threads(limit)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
