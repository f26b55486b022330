"""Speed of ClusterDDPM against the machine's limit and against the authors' configuration.

Run as ``python -m benchmarks.speed`` (``--quick`` for a short run). One run measures:

(a) the roofline: the best FLOP/s of a large float32 matmul in torch;
(b) for each backbone (the default MLP on digits, 64 features; the default
    U-Net on 8x8 digits images and on 28x28 images) the training throughput,
    samples/s of a full M-step (encoder and denoiser forward and backward, the
    KL term and Adam, exactly the fit's ``_run_epoch``), and the inference
    throughput of ``transform`` and ``predict``; each also as a fraction of the
    roofline given the FLOPs per sample counted by
    :class:`torch.utils.flop_counter.FlopCounterMode` (inference: the encoder's
    forward; training: the counted forward and backward of one step);
(c) the same training measurement for the authors' configuration (their U-Net
    and encoder at n_feat=64 on 28x28, T=400, batch 128, their step with two
    encoder passes, :func:`reference_step`);
(d) the E-step: a warm refit of the BayesianGaussianMixture on n latents;
(e) the time to sample 1,000 points with the ancestral sampler (400 steps) and
    with DDIM at 50 steps.

FlopCounterMode counts matrix products and convolutions only; elementwise work
(activations, normalisation, Adam) is not counted, so a fraction of the
roofline is that of the useful dense work. Every row records the 1-minute load
average at its start: the machine is shared and the numbers move with it.

``--compile`` adds rows for ``torch.compile``-d networks, ``--profile`` prints
the top operators of the MLP training step and inference, ``--accuracy`` runs
the digits-images clustering accuracy of the default U-Net width against
width 64. The table is printed as Markdown and saved under
``benchmarks/results/``.
"""

import argparse
import os
import time

import numpy as np
import torch
from scipy.ndimage import zoom
from sklearn.datasets import load_digits
from torch.utils.flop_counter import FlopCounterMode

from skdiffclust import ClusterDDPM
from skdiffclust._mixture import TorchMixture, fit_mixture, make_mixture
from skdiffclust.diffusion import NoiseSchedule, ancestral_sample, ddim_sample
from skdiffclust.nn import ConditionalUNet
from skdiffclust.nn.unet import ResidualConvBlock, _Down

from .report import save_markdown


# ----------------------------------------------------------------- helpers
def load1():
    return os.getloadavg()[0]


def best_time(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


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


# ---------------------------------------------------------------- roofline
def roofline(n, reps):
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    seconds = best_time(lambda: torch.mm(a, b), reps)
    return 2.0 * n**3 / seconds


# ------------------------------------------------------------- estimators
def prepared(params, X):
    """A ClusterDDPM with its networks built and a mixture fitted (no training):
    the state an M-step starts from. Weights do not change the speed."""
    model = ClusterDDPM(
        n_clusters=10, pretrain_epochs=0, n_iter=0, device="cpu", random_state=0, **params
    )
    model.fit(X)
    return model


def training_throughput(model, X, n_rows, reps):
    """Samples/s of the fit's M-step and counted FLOPs per sample (fwd + bwd).

    Each step is the body of the fit's ``_run_epoch`` (loss with one encoder
    pass, finiteness check, backward, Adam, ``loss.item()``), timed one by one
    over ``reps`` epochs of ``n_rows`` rows. The rate is the batch size over
    the median step time: on a shared machine single steps can stall for a
    scheduler time slice, the median ignores such stalls. The epoch rate
    (total rows over total time, stalls included) comes second.
    """
    Xs = torch.from_numpy(model._scale(X[:n_rows]))
    mixture = TorchMixture.from_sklearn(model.mixture_, torch.device("cpu"))
    nets = model._networks().values()
    optimizer = torch.optim.Adam([p for net in nets for p in net.parameters()], lr=1e-4)
    for net in nets:
        net.train()

    def step(x):
        loss = model._network_loss(x, mixture)
        if not torch.isfinite(loss):
            raise FloatingPointError("the benchmark's loss is not finite")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    step(Xs[: model.batch_size])  # warm-up
    times, rows = [], 0
    for _ in range(reps):
        for idx in torch.randperm(len(Xs)).split(model.batch_size):
            if len(idx) < model.batch_size:
                continue
            start = time.perf_counter()
            step(Xs[idx])
            times.append(time.perf_counter() - start)
            rows += len(idx)
    batch = Xs[: model.batch_size]

    def fwd_bwd():
        model._network_loss(batch, mixture).backward()

    flops = count_flops(fwd_bwd) / len(batch)
    optimizer.zero_grad(set_to_none=True)
    return model.batch_size / float(np.median(times)), flops, rows / sum(times)


def inference_throughput(model, X, reps):
    """Samples/s of transform and predict, counted encoder FLOPs per sample."""
    t_transform = best_time(lambda: model.transform(X), reps)
    t_predict = best_time(lambda: model.predict(X), reps)
    x = torch.from_numpy(model._scale(X[:256]))
    with torch.inference_mode():
        flops = count_flops(lambda: model._encode(x)) / len(x)
    return len(X) / t_transform, len(X) / t_predict, flops


# -------------------------------------------------- the authors' reference
class ReferenceEncoder(torch.nn.Module):
    """The authors' ``Encoder``: the U-Net's down path at n_feat, pooled, two heads."""

    def __init__(self, channels=1, n_feat=64, latent_dim=32):
        super().__init__()
        self.init_conv = ResidualConvBlock(channels, n_feat, residual=True)
        self.down1 = _Down(n_feat, n_feat)
        self.down2 = _Down(n_feat, 2 * n_feat)
        self.to_vec = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.GELU())
        self.mean = torch.nn.Linear(2 * n_feat, latent_dim)
        self.log_var = torch.nn.Linear(2 * n_feat, latent_dim)

    def forward(self, x):
        h = self.to_vec(self.down2(self.down1(self.init_conv(x)))).flatten(1)
        return self.mean(h), self.log_var(h)


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
    torch.manual_seed(0)
    encoder = ReferenceEncoder(1, n_feat, latent_dim)
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
    x = torch.from_numpy((X28[:batch_size] / 16.0).astype(np.float32)).view(-1, 1, 28, 28)
    seconds = best_time(lambda: reference_step(encoder, unet, optimizer, x, gmm, schedule), reps)

    def fwd_bwd():
        reference_loss(encoder, unet, x, gmm, schedule).backward()

    flops = count_flops(fwd_bwd) / batch_size
    return batch_size / seconds, flops


# ------------------------------------------------------------------ E-step
def e_step_seconds(n, latent_dim=16, n_clusters=10, reps=3):
    rng = np.random.RandomState(0)
    centers = rng.normal(scale=3.0, size=(n_clusters, latent_dim))
    Z = centers[rng.randint(n_clusters, size=n)] + rng.normal(size=(n, latent_dim))
    mixture = make_mixture(
        n_clusters,
        covariance_type="full",
        weight_concentration_prior_type="dirichlet_distribution",
        weight_concentration_prior=None,
        random_state=0,
    )
    mixture = fit_mixture(mixture, Z)
    Z_moved = Z + 0.05 * rng.normal(size=Z.shape)  # the latents move a little per epoch

    def refit():
        fit_mixture(mixture, Z_moved, max_iter=ClusterDDPM._e_step_max_iter)

    return best_time(refit, reps, warmup=1)


# ---------------------------------------------------------------- sampling
def sampling_seconds(model, n_samples, n_steps):
    device = torch.device("cpu")
    schedule = model._schedule(device)
    Z, _ = model._sample_latents(n_samples, None, np.random.RandomState(0))
    z = torch.as_tensor(Z, dtype=torch.float32)
    model.denoiser_.eval()
    shape = (model.n_features_in_,)
    start = time.perf_counter()
    with torch.inference_mode():
        if n_steps is None:
            ancestral_sample(model.denoiser_, z, schedule, shape)
        else:
            ddim_sample(model.denoiser_, z, schedule, shape, n_steps)
    return time.perf_counter() - start


# ------------------------------------------------------------------ report
class Table:
    def __init__(self, peak):
        self.peak = peak
        self.rows = []

    def add(self, what, value, unit, flops=None, load=None, note=""):
        fraction = "" if flops is None else f"{100 * value * flops / self.peak:.0f}%"
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


def profile_mlp(model, X):
    from torch.profiler import ProfilerActivity, profile

    Xs = torch.from_numpy(model._scale(X))
    mixture = TorchMixture.from_sklearn(model.mixture_, torch.device("cpu"))
    nets = model._networks().values()
    optimizer = torch.optim.Adam([p for net in nets for p in net.parameters()], lr=1e-4)

    def epoch():
        model._run_epoch(Xs, lambda x: model._network_loss(x, mixture), optimizer, "p", 0)

    epoch()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        epoch()
    print("\n## Profile: MLP M-step epoch (self CPU time)\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    big = np.tile(X, (8, 1))
    model.transform(big)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.transform(big)
    print("\n## Profile: MLP transform (self CPU time)\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def accuracy_comparison(epochs):
    """Clustering accuracy on 8x8 digits images: default U-Net width vs 64."""
    from skdiffclust.metrics import clustering_accuracy

    digits = load_digits()
    out = []
    for width in (ClusterDDPM().unet_width, 64):
        start = time.perf_counter()
        load = load1()
        model = ClusterDDPM(
            n_clusters=10,
            image_shape=(1, 8, 8),
            unet_width=width,
            pretrain_epochs=epochs[0],
            n_iter=epochs[1],
            device="cpu",
            random_state=0,
        ).fit(digits.data)
        acc = clustering_accuracy(digits.target, model.labels_)
        out.append((width, acc, time.perf_counter() - start, load))
    return out


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

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {load1():.2f}")
    load = load1()
    peak = roofline(2048 if quick else 4096, reps + 2)
    table = Table(peak)
    table.add("roofline: float32 matmul", peak / 1e9, "GFLOP/s", load=load)

    digits = load_digits().data
    X8 = digits
    X28 = digits_images(28)
    configs = [
        ("MLP, digits (64 features)", {}, X8, len(X8)),
        ("U-Net default width, 8x8 images", {"image_shape": (1, 8, 8)}, X8, len(X8) // 2),
        (
            "U-Net default width, 28x28 images",
            {"image_shape": (1, 28, 28)},
            X28,
            256 if quick else 512,
        ),
    ]
    models = {}
    for name, params, X, n_rows in configs:
        model = models[name] = prepared(params, X)
        load = load1()
        rate, flops, epoch_rate = training_throughput(model, X, n_rows, reps)
        table.add(
            f"{name}: training (M-step)",
            rate,
            "samples/s",
            flops,
            load,
            f"batch 128; with stalls {epoch_rate:,.0f}/s",
        )
        big = np.tile(X, (max(1, 8192 // len(X)) if name.startswith("MLP") else 1, 1))
        load = load1()
        r_transform, r_predict, flops = inference_throughput(model, big, reps)
        table.add(f"{name}: transform", r_transform, "samples/s", flops, load, f"n={len(big)}")
        table.add(f"{name}: predict", r_predict, "samples/s", flops, load, f"n={len(big)}")
        if args.compile and name.startswith("MLP"):
            compiled = prepared(params, X)
            compiled.encoder_ = torch.compile(compiled.encoder_)
            compiled.denoiser_ = torch.compile(compiled.denoiser_)
            load = load1()
            rate_c, _, _ = training_throughput(compiled, X, n_rows, reps)
            table.add(
                f"{name}: training, torch.compile",
                rate_c,
                "samples/s",
                flops=None,
                load=load,
                note=f"eager {rate:,.0f}",
            )
            load = load1()
            r_c, _, _ = inference_throughput(compiled, big, reps)
            table.add(
                f"{name}: transform, torch.compile",
                r_c,
                "samples/s",
                load=load,
                note=f"eager {r_transform:,.0f}",
            )

    if not args.no_reference:
        load = load1()
        rate_ref, flops_ref = reference_training(X28, 1 if quick else 2)
        table.add(
            "reference (authors: n_feat=64, 28x28, 2 encoder passes): training",
            rate_ref,
            "samples/s",
            flops_ref,
            load,
            "batch 128, T=400",
        )

    for n in (1797, 10_000) if quick else (1797, 10_000, 100_000):
        load = load1()
        table.add(
            f"E-step: warm refit on {n:,} latents (16-d, K=10, full)",
            e_step_seconds(n),
            "s",
            load=load,
            note="max_iter=20",
        )

    model = models["MLP, digits (64 features)"]
    n_sample = 1000
    load = load1()
    t_anc = sampling_seconds(model, n_sample, None)
    table.add(f"sample {n_sample:,} (MLP): ancestral, 400 steps", t_anc, "s", load=load)
    load = load1()
    t_ddim = sampling_seconds(model, n_sample, 50)
    table.add(
        f"sample {n_sample:,} (MLP): DDIM, 50 steps",
        t_ddim,
        "s",
        load=load,
        note=f"{t_anc / t_ddim:.1f}x faster",
    )

    if args.fit:
        from skdiffclust.metrics import clustering_accuracy

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
                f"ACC {acc:.3f}; pretrain {fitted.pretrain_epochs} + "
                f"{len(fitted.history_['loss'])} EM epochs"
            ),
        )

    if args.accuracy:
        for width, acc, seconds, load in accuracy_comparison(args.accuracy):
            table.add(
                f"ACC, 8x8 digits images, unet_width={width}",
                acc,
                "accuracy",
                load=load,
                note=f"pretrain {args.accuracy[0]}, n_iter {args.accuracy[1]}, fit {seconds:.0f}s",
            )

    if args.profile:
        profile_mlp(model, X8)

    markdown = (
        f"# ClusterDDPM speed ({'quick' if quick else 'full'})\n\n"
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs. Fractions of the roofline use FLOPs counted by "
        "FlopCounterMode (matmuls and convolutions only).\n\n" + table.markdown() + "\n"
    )
    print("\n" + markdown)
    save_markdown(markdown, "speed", quick=quick, out=args.out)


if __name__ == "__main__":
    main()
