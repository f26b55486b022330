"""scikit-learn's estimator checks at the estimators' default model size.

``test_common.py`` runs them on tiny networks, for speed; here every network
and mixture parameter keeps its default (``latent_dim``, ``hidden_dims``,
``n_components``, ``n_timesteps``, ...) and only the epochs are reduced, so
that the small data sets of the checks (10 to 150 rows) meet the real models.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skdiffclust import ClusterDDPM, DeepDPGMMClusterer

#: Fewer epochs than the defaults: the checks fit about 50 times each.
REDUCED_EPOCHS = {"pretrain_epochs": 5, "n_iter": 3}

DEFAULT_SIZE = [
    ClusterDDPM(device="cpu", random_state=0, **REDUCED_EPOCHS),
    DeepDPGMMClusterer(device="cpu", random_state=0, **REDUCED_EPOCHS),
]


@parametrize_with_checks(DEFAULT_SIZE)
def test_sklearn_checks_at_default_model_size(estimator, check):
    check(estimator)
