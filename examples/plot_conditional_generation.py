"""
=====================================================
Unsupervised conditional generation with ClusterDDPM
=====================================================

A fitted :class:`~skdiffclust.ClusterDDPM` is also a generative model: its
diffusion model turns noise into data, conditioned on a latent code, and its
mixture says where the codes of each cluster lie. ``sample(n, cluster=k)``
draws codes from cluster ``k``'s Gaussian and runs the reverse diffusion from
them, so it generates new data *of a cluster that was found without labels*.
The ClusterDDPM paper calls this unsupervised conditional generation.

The model is fitted on scikit-learn's 8x8 digits with the default settings
(about a minute on two CPU cores); sampling 80 images with the 400-step
ancestral sampler takes a few seconds more.
"""

# %%
# Fit the model
# -------------
from time import perf_counter

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from skdiffclust import ClusterDDPM

X, y = load_digits(return_X_y=True)
model = ClusterDDPM(n_clusters=10, device="cpu", random_state=0).fit(X)

# %%
# Generate digits cluster by cluster
# ----------------------------------
# One row per cluster. The first column is the mean of the training images of
# the cluster, for comparison; the other columns are generated images. The
# label on the left is the digit that is most frequent among the cluster's
# training images: the model never saw these labels.
n_per_cluster = 8


def majority_digit(cluster):
    digits, counts = np.unique(y[model.labels_ == cluster], return_counts=True)
    return digits[np.argmax(counts)]


def plot_generated(guidance, title):
    fig, axes = plt.subplots(
        model.n_clusters_,
        n_per_cluster + 1,
        figsize=((n_per_cluster + 1) * 0.85, model.n_clusters_ * 0.9),
        squeeze=False,
    )
    for cluster, row in enumerate(axes):
        generated, _ = model.sample(n_per_cluster, cluster=cluster, guidance=guidance)
        mean_image = X[model.labels_ == cluster].mean(axis=0)
        images = [mean_image, *generated]
        for ax, image in zip(row, images, strict=True):
            # The digits' pixel values run from 0 to 16.
            ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=16)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(
            f"{cluster} ({majority_digit(cluster)})", rotation=0, ha="right", va="center"
        )
    axes[0, 0].set_title("mean", fontsize=9)
    axes[0, 1].set_title("generated samples", fontsize=9, loc="left")
    fig.suptitle(title, fontsize=11)
    fig.supylabel("cluster (majority digit)", fontsize=9)
    fig.tight_layout()
    return fig


plot_generated(guidance=0.0, title="Generated digits, one row per cluster")
plt.show()

# %%
# Classifier-free guidance
# ------------------------
# During training the code is dropped (set to zero) 10% of the time
# (``condition_dropout=0.1``), so the same network also learned an
# unconditional denoiser. ``guidance=w`` extrapolates away from it,
# ``eps = (1 + w) eps(z) - w eps(0)``: larger ``w`` gives images more typical
# of their cluster and less varied. Guidance doubles the cost of sampling.
plot_generated(guidance=2.0, title="With classifier-free guidance, w = 2")
plt.show()

# %%
# Faster sampling with DDIM
# -------------------------
# ``n_steps=S`` replaces the 400-step ancestral sampler by the deterministic
# DDIM sampler on ``S`` steps: here 20 times fewer network evaluations.
for n_steps in (None, 20):
    start = perf_counter()
    model.sample(100, n_steps=n_steps)
    name = "ancestral, 400 steps" if n_steps is None else f"DDIM, {n_steps} steps"
    print(f"{name}: 100 samples in {perf_counter() - start:.2f} s")

X_ddim, y_ddim = model.sample(10 * 6, n_steps=20)
fig, axes = plt.subplots(6, 10, figsize=(8, 5))
for ax, image in zip(axes.ravel(), X_ddim, strict=True):
    ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=16)
    ax.set_axis_off()
fig.suptitle("DDIM with 20 steps, clusters drawn by their mixture weights", fontsize=11)
fig.tight_layout()
plt.show()
