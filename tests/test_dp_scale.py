"""The prior-scale study's closed-form evidence and its report (benchmarks/dp_scale.py)."""

import numpy as np
import pytest
from scipy.stats import multivariate_t
from sklearn.datasets import make_blobs
from sklearn.mixture import BayesianGaussianMixture

from benchmarks.dp_scale import (
    RULES,
    SCALES,
    first_e_step,
    log_marginal_likelihood,
    markdown,
    partition_evidence,
    picks,
    pretrained_codes,
    read_rows,
    write_rows,
)
from benchmarks.dp_scale import main as dp_scale_main
from benchmarks.suite_datasets import SUITE_DATASETS


def test_marginal_likelihood_of_one_row_is_the_prior_predictive_student_t():
    rng = np.random.default_rng(0)
    d, dof, kappa = 3, 5.0, 0.5
    prior = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 1.5]])
    mean = rng.normal(size=d)
    x = rng.normal(size=(1, d))
    t = multivariate_t(
        loc=mean, shape=prior * (kappa + 1) / (kappa * (dof - d + 1)), df=dof - d + 1
    )
    assert log_marginal_likelihood(x, prior, dof, mean, kappa) == pytest.approx(t.logpdf(x[0]))


def test_marginal_likelihood_follows_the_chain_rule():
    # log p(x1, x2) = log p(x1) + log p(x2 | x1), the second term from the posterior.
    rng = np.random.default_rng(1)
    d, dof, kappa = 2, 4.0, 1.0
    prior, mean = np.eye(d), np.zeros(d)
    x = rng.normal(size=(2, d))
    post_mean = (kappa * mean + x[0]) / (kappa + 1)
    post_prior = prior + kappa / (kappa + 1) * np.outer(x[0] - mean, x[0] - mean)
    joint = log_marginal_likelihood(x, prior, dof, mean, kappa)
    first = log_marginal_likelihood(x[:1], prior, dof, mean, kappa)
    second = log_marginal_likelihood(x[1:], post_prior, dof + 1, post_mean, kappa + 1)
    assert joint == pytest.approx(first + second)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_evidence_prefers_the_true_partition_of_separated_blobs(covariance_type):
    Z, y = make_blobs(200, n_features=3, centers=[[-6, 0, 0], [6, 0, 0]], random_state=0)
    d = Z.shape[1]
    prior = np.eye(d) if covariance_type == "full" else np.ones(d)
    mixture = BayesianGaussianMixture(
        n_components=4,
        covariance_type=covariance_type,
        weight_concentration_prior_type="dirichlet_process",
        covariance_prior=prior,
        degrees_of_freedom_prior=float(d),
        random_state=0,
    ).fit(Z)
    split = partition_evidence(Z, y, mixture)
    assert split > partition_evidence(Z, np.zeros(len(Z), dtype=int), mixture)
    assert split > partition_evidence(Z, np.arange(len(Z)) % 2, mixture)


def _rows(name, n_classes, counts, auto_scale):
    return [
        {
            "dataset": name,
            "n_samples": 100,
            "n_classes": n_classes,
            "scale": scale,
            "auto": scale == auto_scale,
            "n_clusters": k,
            "acc": 0.5,
            "held_out": -float(k),
            "evidence": float(k),
            "stability": 1.0 if k == 1 else 1 / k,
        }
        for scale, k in zip(SCALES, counts, strict=True)
    ]


def test_rules_pick_their_scales_and_the_report_counts_them():
    counts = [9, 8, 6, 4, 3, 2, 1, 1]
    rows = _rows("toy", 3, counts, auto_scale=SCALES[4])
    chosen = picks(rows)
    assert set(chosen) == set(RULES)
    assert chosen["auto"]["scale"] == SCALES[4]
    assert chosen["held-out"]["n_clusters"] == 1  # the best held-out score
    assert chosen["evidence"]["n_clusters"] == 9
    # Stability never picks one cluster when a scale keeps two or more.
    assert chosen["stability"]["n_clusters"] == 2
    report = markdown({"toy": rows}, "python -m benchmarks.dp_scale")
    assert "| toy | 100 | 3 | 9 | 8 | 6 | 4 | 3 | 2 | 1 | 1 |" in report
    # Within max(1, 0.2 K) of 3: auto (3) and stability (2); not held-out (1) or evidence (9).
    assert "auto 1 of 1, held-out 0 of 1, evidence 0 of 1, stability 1 of 1" in report


def test_first_e_step_uses_the_fitted_code_size_and_survives_a_split():
    # iris has 4 features, so the code has 4 dimensions, not the default 10.
    estimator, Z, _ = pretrained_codes(SUITE_DATASETS["iris"], 0, tiny=True)
    assert Z.shape[1] == estimator.network_spec_.latent_dim == 4
    mixture = first_e_step(estimator, Z, 1.0, 0)
    assert mixture.means_.shape[1] == 4
    # Far-apart groups under a very wide prior: the mixture merges them, and
    # the split that follows separates them again.
    blobs, labels = make_blobs(180, 4, centers=3, cluster_std=0.3, random_state=0)
    mixture = first_e_step(estimator, blobs, 50.0, 0)
    assert len(np.unique(mixture.predict(blobs))) == 3
    assert estimator.cluster_scale_ != 50.0  # the study's copies leave the estimator alone


def test_report_merges_runs_on_disjoint_data_sets_in_the_suite_order(tmp_path):
    runs = {"wine": [9, 8, 6, 4, 3, 2, 1, 1], "iris": [7, 5, 3, 3, 2, 2, 2, 1]}
    for name, counts in runs.items():
        (tmp_path / name).mkdir()
        write_rows(_rows(name, 3, counts, auto_scale=SCALES[4]), tmp_path / name / "dp-scale.csv")
    csvs = [str(tmp_path / name / "dp-scale.csv") for name in runs]
    dp_scale_main(["--report", *csvs, "--out", str(tmp_path)])
    merged = read_rows([tmp_path / "dp-scale.csv"])
    assert list(merged) == ["iris", "wine"]  # the suite's order, not the CSVs'
    assert [r["n_clusters"] for r in merged["wine"]] == runs["wine"]
    assert merged["iris"][4]["auto"] is True and merged["iris"][0]["auto"] is False
    report = (tmp_path / "dp-scale.md").read_text()
    assert "| iris | 100 | 3 | 7 | 5 | 3 | 3 | 2 | 2 | 2 | 1 |" in report
    assert "--report " + csvs[0] in report
    assert (tmp_path / "dp-scale.png").stat().st_size > 0
    with pytest.raises(ValueError, match="repeats data sets of an earlier CSV: iris"):
        read_rows([csvs[1], csvs[1]])
