"""
=========================================================
Finding the number of clusters with DeepDPGMMClusterer
=========================================================

:class:`~skdiffclust.DeepDPGMMClusterer` is not told how many clusters to look
for. Its latent space is clustered by a Dirichlet-process Gaussian mixture
truncated at ``n_components`` components (30 here). The first mixture starts
from Ward's agglomerative clustering of the latent codes into 30 clusters, and
the Dirichlet process empties the components the data do not support;
components that no sample prefers are dropped, and the clustering loss, by
gathering the latent codes, can merge clusters during training. The paper
calls this deep model selection.

``n_clusters_history_`` records the number of occupied clusters after every
E-step: the first entry after pretraining, then one per EM iteration. We fit the
model on scikit-learn's 8x8 digits (10 true classes) twice, with the default
alpha Jensen-Shannon clustering loss and with the KL divergence of the
predecessor method, and compare their histories with the true number of
digits. Both fits use the default settings and take about half a minute
together on two CPU cores.
"""

# %%
# Fit with the two clustering losses
# ----------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

from skdiffclust import DeepDPGMMClusterer
from skdiffclust.metrics import clustering_accuracy

X, y = load_digits(return_X_y=True)
n_true = len(np.unique(y))

models = {}
for divergence in ("ajs", "kl"):
    model = DeepDPGMMClusterer(n_components=30, divergence=divergence, device="cpu", random_state=0)
    models[divergence] = model.fit(X)
    labels = model.labels_
    print(
        f"divergence={divergence!r}: {model.n_clusters_} clusters found, "
        f"ACC {clustering_accuracy(y, labels):.3f}, "
        f"NMI {normalized_mutual_info_score(y, labels):.3f}, "
        f"ARI {adjusted_rand_score(y, labels):.3f}"
    )

# %%
# The number of clusters during training
# --------------------------------------
# E-step 0 is the mixture fitted on the pretrained autoencoder's codes; each
# later point follows one epoch of the clustering loss. The dotted line is the
# truncation level, the largest number of clusters the model can find.
fig, ax = plt.subplots(figsize=(7, 4))
names = {"ajs": "alpha-JS loss (default)", "kl": "KL loss"}
for divergence, model in models.items():
    history = model.n_clusters_history_
    ax.plot(np.arange(len(history)), history, marker="o", markersize=3, label=names[divergence])
ax.axhline(n_true, color="black", linestyle="--", label=f"true number of digits ({n_true})")
ax.axhline(30, color="grey", linestyle=":", label="truncation (n_components=30)")
ax.set_xlabel("E-step (0 = after pretraining)")
ax.set_ylabel("occupied clusters")
ax.set_ylim(0, 33)
ax.set_title("Deep model selection on the digits")
ax.legend(loc="center right", fontsize=9)
fig.tight_layout()
plt.show()

# %%
# Which digits went where?
# ------------------------
# The contingency table of the default model counts the images of each true
# digit (rows) in each cluster found (columns). A cluster that takes most of
# two rows merged two digits; a row spread over two columns was split.
model = models["ajs"]
table = contingency_matrix(y, model.labels_)
# Order the clusters by their majority digit, so the table reads diagonally.
order = np.lexsort((-table.max(axis=0), table.argmax(axis=0)))
table = table[:, order]

fig, ax = plt.subplots(figsize=(max(5, 0.45 * table.shape[1] + 2), 4.8))
image = ax.imshow(table, cmap="Blues")
for (row, col), count in np.ndenumerate(table):
    if count:
        colour = "white" if count > table.max() / 2 else "black"
        ax.text(col, row, count, ha="center", va="center", fontsize=7, color=colour)
ax.set_xticks(range(table.shape[1]), order)
ax.set_yticks(range(n_true))
ax.set_xlabel("cluster found (label)")
ax.set_ylabel("true digit")
ax.set_title(f"Digits against the {model.n_clusters_} clusters found (alpha-JS)")
fig.colorbar(image, ax=ax, label="images", shrink=0.8)
fig.tight_layout()
plt.show()

# %%
# At the same weight, the KL loss merged more clusters than the alpha-JS
# divergence (1 to 5 on digits over three seeds, against 10 on each) and scored
# lower (mean accuracy 0.33 against 0.885). The number of clusters found depends on the
# components' prior scale in the standardised latent space (``cluster_scale``)
# more than on the Dirichlet concentration (``weight_concentration_prior``):
# larger values favour fewer, wider clusters. See the user guide for the prior,
# and the benchmarks page for results over several seeds.
