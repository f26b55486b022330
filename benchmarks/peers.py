"""Deep clustering peers from ClustPy: DEC, IDEC, VaDE and N2D, as optional methods.

ClustPy is not a dependency of skdiffclust or of its benchmarks: it requires
torchvision, whose wheels are built for one exact torch build, so that
installing it with its dependencies can replace the local torch (see the
benchmark suite's documentation for an install recipe). Each method here
requires ``clustpy.deep``; without it, the runners skip the method with a
note. ClustPy is imported by the factories only.

The peers run at ClustPy's default settings with the number of clusters
given, except that

* VaDE reconstructs with a summed squared error instead of its default binary
  cross-entropy when the data are not in [0, 1] (standardised tabular data,
  z-normalised series), which the cross-entropy refuses;
* N2D uses UMAP as its manifold learner (as in its paper: ``n_components``
  the number of clusters, ``min_dist=0``), since its default t-SNE does not
  embed in more than 3 dimensions;
* on a data set with an ``epoch_scale`` (a compute budget), the epochs are
  scaled as for skdiffclust's estimators.
"""

from .registry import TINY_DEEP_PARAMS, Method, compile_umap, scaled_epochs

#: Epochs of the peers in tiny runs (the harness's own test).
TINY_EPOCHS = TINY_DEEP_PARAMS["pretrain_epochs"]


def _configure(estimator, info, tiny, epochs):
    """Apply the tiny overrides or the data set's epoch budget to the parameters ``epochs``."""
    if tiny:
        return estimator.set_params(**dict.fromkeys(epochs, TINY_EPOCHS))
    return estimator.set_params(**scaled_epochs(estimator, info, epochs))


def _make_dec(info, seed, tiny):
    from clustpy.deep import DEC

    estimator = DEC(n_clusters=info.n_classes, random_state=seed)
    return _configure(estimator, info, tiny, ("pretrain_epochs", "clustering_epochs"))


def _make_idec(info, seed, tiny):
    from clustpy.deep import IDEC

    estimator = IDEC(n_clusters=info.n_classes, random_state=seed)
    return _configure(estimator, info, tiny, ("pretrain_epochs", "clustering_epochs"))


def _make_vade(info, seed, tiny):
    import torch
    from clustpy.deep import VaDE

    estimator = VaDE(n_clusters=info.n_classes, random_state=seed)
    if not info.unit_interval:
        estimator.set_params(ssl_loss_fn=torch.nn.MSELoss(reduction="sum"))
    return _configure(estimator, info, tiny, ("pretrain_epochs", "clustering_epochs"))


def _n2d_manifold_params(info, seed):
    return {"n_components": info.n_classes, "min_dist": 0.0, "random_state": seed}


def _make_n2d(info, seed, tiny):
    from clustpy.deep import N2D
    from umap import UMAP

    estimator = N2D(
        n_clusters=info.n_classes,
        manifold_class=UMAP,
        manifold_params=_n2d_manifold_params(info, seed),
        random_state=seed,
    )
    return _configure(estimator, info, tiny, ("pretrain_epochs",))


def _warm_up_n2d(estimator, X):
    """Compile the UMAP of N2D (see :func:`~benchmarks.registry.compile_umap`)."""
    from umap import UMAP

    compile_umap(UMAP(**estimator.manifold_params), X)


PEER_METHODS = {
    method.name: method
    for method in [
        Method(
            "DEC",
            "ClustPy DEC, default settings, k = number of classes",
            _make_dec,
            requires=("clustpy.deep",),
        ),
        Method(
            "IDEC",
            "ClustPy IDEC, default settings, k = number of classes",
            _make_idec,
            requires=("clustpy.deep",),
        ),
        Method(
            "VaDE",
            "ClustPy VaDE, default settings, k = number of classes; summed squared error "
            "instead of binary cross-entropy on data outside [0, 1]",
            _make_vade,
            requires=("clustpy.deep",),
        ),
        Method(
            "N2D",
            "ClustPy N2D, default settings, k = number of classes; UMAP(n_components=k, "
            "min_dist=0) as its manifold; numba's compilation is done by an untimed warm-up "
            "fit on 200 rows",
            _make_n2d,
            requires=("clustpy.deep", "umap"),
            warm_up=_warm_up_n2d,
        ),
    ]
}
