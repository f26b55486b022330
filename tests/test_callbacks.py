"""skdiffclust.callbacks: what the training loop tells its observers, and when."""

import pickle
import re

import numpy as np
import pytest
from _estimators import blobs, small
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skdiffclust import ClusterDDPM, DeepDPGMMClusterer
from skdiffclust._base import TrainingDivergedError
from skdiffclust.callbacks import Callback, PrintProgress

estimators = pytest.mark.parametrize(
    "estimator",
    [small(ClusterDDPM), small(DeepDPGMMClusterer)],
    ids=["ClusterDDPM", "DeepDPGMMClusterer"],
)


class Recorder(Callback):
    """Records every call, with its keyword arguments."""

    def __init__(self):
        self.events = []

    def _record(self, event, estimator, info):
        self.events.append((event, info))

    def on_fit_begin(self, estimator, **info):
        self._record("on_fit_begin", estimator, info)

    def on_epoch_begin(self, estimator, **info):
        self._record("on_epoch_begin", estimator, info)

    def on_epoch_end(self, estimator, **info):
        self._record("on_epoch_end", estimator, info)

    def on_e_step_end(self, estimator, **info):
        # The latents are the loop's own array: keep a copy.
        self._record("on_e_step_end", estimator, {**info, "latents": info["latents"].copy()})

    def on_fit_end(self, estimator):
        self._record("on_fit_end", estimator, {})

    def calls(self, event):
        return [info for name, info in self.events if name == event]


def _fit_with_recorder(estimator, X, **params):
    recorder = Recorder()
    model = clone(estimator).set_params(callbacks=[recorder], **params).fit(X)
    return model, recorder


@estimators
def test_epoch_ends_carry_the_losses_of_the_history(estimator):
    X, _ = blobs()
    model, recorder = _fit_with_recorder(estimator, X)
    ends = recorder.calls("on_epoch_end")
    assert len(ends) == model.pretrain_epochs + model.n_iter
    history = model.history_
    assert [end["loss"] for end in ends] == history["pretrain_loss"] + history["loss"]
    assert [end["seconds"] for end in ends] == history["epoch_time"]
    stages = ["pretrain"] * model.pretrain_epochs + ["EM"] * model.n_iter
    assert [end["stage"] for end in ends] == stages
    epochs = list(range(model.pretrain_epochs)) + list(range(model.n_iter))
    assert [end["epoch"] for end in ends] == epochs
    assert [end["n_epochs"] for end in ends] == (
        [model.pretrain_epochs] * model.pretrain_epochs + [model.n_iter] * model.n_iter
    )
    # The occupied clusters after each EM iteration's E-step; none in pretraining.
    assert [end.get("n_clusters") for end in ends] == (
        [None] * model.pretrain_epochs + history["n_clusters"][1:]
    )
    begins = recorder.calls("on_epoch_begin")
    assert [(b["stage"], b["epoch"]) for b in begins] == list(zip(stages, epochs, strict=True))


@estimators
def test_e_step_ends_carry_the_latents_and_the_mixture(estimator):
    X, _ = blobs()
    model, recorder = _fit_with_recorder(estimator, X)
    steps = recorder.calls("on_e_step_end")
    assert len(steps) == model.n_iter + 1
    assert [step["iteration"] for step in steps] == list(range(model.n_iter + 1))
    assert [step["n_clusters"] for step in steps] == model.history_["n_clusters"]
    last = steps[-1]
    assert last["latents"].shape == (len(X), model.latent_dim)
    assert last["latents"].dtype == np.float64
    # The codes of the last E-step are those of the fitted model (float32 out).
    np.testing.assert_allclose(last["latents"], model.transform(X), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(last["mixture"].means_, model.mixture_.means_)


@estimators
def test_events_come_in_the_order_of_the_loop(estimator):
    X, _ = blobs()
    model, recorder = _fit_with_recorder(estimator, X, n_iter=1)
    names = [name for name, _ in recorder.events]
    pretrain = ["on_epoch_begin", "on_epoch_end"] * model.pretrain_epochs
    em = ["on_epoch_begin", "on_e_step_end", "on_epoch_end"]
    assert names == ["on_fit_begin", *pretrain, "on_e_step_end", *em, "on_fit_end"]
    assert recorder.calls("on_fit_begin") == [{"n_samples": len(X), "continuing": False}]


def test_a_warm_start_continues_the_count_of_e_steps():
    X, _ = blobs()
    model, first = _fit_with_recorder(small(ClusterDDPM), X)
    second = Recorder()
    model.set_params(warm_start=True, callbacks=[second], n_iter=2).fit(X)
    assert second.calls("on_fit_begin") == [{"n_samples": len(X), "continuing": True}]
    assert [step["iteration"] for step in second.calls("on_e_step_end")] == [3, 4]
    ends = second.calls("on_epoch_end")
    assert [end["stage"] for end in ends] == ["EM", "EM"]
    assert [end["loss"] for end in ends] == model.history_["loss"][2:]
    assert len(first.calls("on_epoch_end")) == 5  # the first fit's recorder is untouched


@pytest.mark.parametrize("callbacks", [[object()], [Recorder(), "print"], (PrintProgress,)])
def test_non_callbacks_are_rejected_before_training(callbacks, monkeypatch):
    X, _ = blobs()
    model = small(ClusterDDPM, callbacks=callbacks)

    def fail(self, spec):
        raise AssertionError("training started before the callbacks were checked")

    monkeypatch.setattr(ClusterDDPM, "_build_networks", fail)
    with pytest.raises(TypeError, match="callbacks must be instances of .*Callback, got"):
        model.fit(X)
    with pytest.raises(NotFittedError):
        model.predict(X)


def test_callbacks_may_be_a_tuple_and_each_is_called():
    X, _ = blobs()
    recorders = (Recorder(), Recorder())
    model = small(ClusterDDPM, callbacks=recorders, n_iter=0).fit(X)
    for recorder in model.callbacks:
        assert len(recorder.calls("on_epoch_end")) == model.pretrain_epochs


def test_a_failed_fit_does_not_end():
    X, _ = blobs()
    recorder = Recorder()
    model = small(ClusterDDPM, learning_rate=1e6, callbacks=[recorder])
    with pytest.raises(TrainingDivergedError):
        model.fit(X)
    names = [name for name, _ in recorder.events]
    assert names[0] == "on_fit_begin" and "on_fit_end" not in names


def test_a_model_with_callbacks_pickles():
    X, _ = blobs()
    model, _ = _fit_with_recorder(small(ClusterDDPM), X, n_iter=1)
    restored = pickle.loads(pickle.dumps(model))
    assert isinstance(restored.callbacks[0], Recorder)
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))


# --------------------------------------------------------------------- verbose
# The format of verbose's lines is tested for every estimator in test_common.py.
def test_print_progress_is_what_verbose_prints(capsys):
    X, _ = blobs()
    small(ClusterDDPM, callbacks=[PrintProgress()]).fit(X)
    by_callback = capsys.readouterr().out.splitlines()
    small(ClusterDDPM, verbose=1).fit(X)
    by_verbose = capsys.readouterr().out.splitlines()
    strip_time = re.compile(r", \d+\.\d{2}s$")
    assert [strip_time.sub("", line) for line in by_callback] == [
        strip_time.sub("", line) for line in by_verbose
    ]
    # verbose and a callback together: both observe the same fit.
    recorder = Recorder()
    model = small(ClusterDDPM, verbose=1, callbacks=[recorder]).fit(X)
    assert len(capsys.readouterr().out.splitlines()) == len(by_verbose)
    assert len(model.callbacks[0].calls("on_epoch_end")) == len(by_verbose)
