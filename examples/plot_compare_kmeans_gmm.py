"""
================================================
Comparison with k-means and a Gaussian mixture
================================================

Deep clustering pays off when the raw features are a poor space to measure
similarity in. This example compares :class:`~skdiffclust.ClusterDDPM` with
two classical clusterers on scikit-learn's 8x8 digits:

* :class:`~sklearn.cluster.KMeans` on the raw pixels;
* a diagonal :class:`~sklearn.mixture.GaussianMixture` on 50 principal
  components.

It then looks at the latent space that ClusterDDPM learned, through a 2-D
t-SNE embedding of ``transform(X)`` next to one of the raw pixels.

ClusterDDPM runs with its default settings (about a minute on two CPU cores);
the t-SNE embeddings take about 20 seconds more. The results of one seed are
shown; the benchmarks page averages several.
"""

# %%
# Fit the three clusterers
# ------------------------
from time import perf_counter

import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import make_pipeline

from skdiffclust import ClusterDDPM
from skdiffclust.metrics import clustering_accuracy

X, y = load_digits(return_X_y=True)

clusterers = {
    "KMeans": KMeans(n_clusters=10, n_init=10, random_state=0),
    "GMM on PCA-50": make_pipeline(
        PCA(n_components=50, random_state=0),
        GaussianMixture(n_components=10, covariance_type="diag", random_state=0),
    ),
    "ClusterDDPM": ClusterDDPM(n_clusters=10, device="cpu", random_state=0),
}

scores = {}
for name, clusterer in clusterers.items():
    start = perf_counter()
    labels = clusterer.fit_predict(X)
    elapsed = perf_counter() - start
    scores[name] = (
        clustering_accuracy(y, labels),
        normalized_mutual_info_score(y, labels),
        adjusted_rand_score(y, labels),
    )
    print(
        f"{name:>14}: ACC {scores[name][0]:.3f}  NMI {scores[name][1]:.3f}  "
        f"ARI {scores[name][2]:.3f}  ({elapsed:.1f} s)"
    )

# %%
# Plot the scores
# ---------------
metric_names = ["ACC", "NMI", "ARI"]
width = 0.8 / len(scores)
fig, ax = plt.subplots(figsize=(7, 3.6))
for i, (name, values) in enumerate(scores.items()):
    positions = np.arange(len(metric_names)) + (i - (len(scores) - 1) / 2) * width
    bars = ax.bar(positions, values, width, label=name)
    ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
ax.set_xticks(np.arange(len(metric_names)), metric_names)
ax.set_ylim(0, 1.15)
ax.set_ylabel("score against the true digits")
ax.set_title("Clustering the 8x8 digits (one seed)")
ax.legend(loc="upper center", ncols=3, fontsize=9)
fig.tight_layout()
plt.show()

# %%
# A 2-D view of the latent space
# ------------------------------
# ``transform`` returns the latent mean of each sample, the space in which
# ClusterDDPM's mixture lives (16 dimensions by default). We embed it in 2-D
# with t-SNE, and do the same with the raw pixels. Points are coloured by the
# true digit on the top row and by ClusterDDPM's cluster on the bottom row.
model = clusterers["ClusterDDPM"]
Z = model.transform(X)
print(f"latent codes: {Z.shape}")

embeddings = {
    "raw pixels (64-d)": TSNE(random_state=0, init="pca").fit_transform(X),
    f"ClusterDDPM latent space ({Z.shape[1]}-d)": TSNE(random_state=0, init="pca").fit_transform(Z),
}

fig, axes = plt.subplots(2, 2, figsize=(9, 8.5), layout="constrained")
colourings = [("true digit", y), ("ClusterDDPM cluster", model.labels_)]
for row, (colour_name, colour) in zip(axes, colourings, strict=True):
    for ax, (space, embedding) in zip(row, embeddings.items(), strict=True):
        scatter = ax.scatter(
            embedding[:, 0], embedding[:, 1], c=colour, cmap="tab10", s=8, vmin=-0.5, vmax=9.5
        )
        ax.set_title(f"t-SNE of {space}\ncoloured by {colour_name}", fontsize=12)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(scatter, ax=row, ticks=range(10), label=colour_name, shrink=0.9)
plt.show()

# %%
# The mixture of ClusterDDPM is fitted in the latent space, so its clusters
# can only be as good as the groups there: compare how compact and how
# separate the digits are in the two top panels. t-SNE exaggerates the
# separation in both, so compare the two columns rather than reading
# distances. Where a colour on the bottom row covers several groups of the top
# row, ClusterDDPM merged digits; where a group of the top row has two colours
# below, it split one. With a different ``random_state`` the merges change:
# the benchmarks page averages several seeds.
