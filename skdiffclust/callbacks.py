"""Observers of the training loop.

Pass instances of :class:`Callback` subclasses as an estimator's ``callbacks``
parameter to watch a fit without touching its internals, in the spirit of
skorch's callbacks. The loop calls, in this order:

- :meth:`Callback.on_fit_begin` once, before any training;
- :meth:`Callback.on_epoch_begin` and :meth:`Callback.on_epoch_end` around
  each pretraining epoch and each EM iteration, and
  :meth:`Callback.on_batch_begin` and :meth:`Callback.on_batch_end` around
  each optimiser step inside them;
- :meth:`Callback.on_e_step_end` after each E-step: once after pretraining
  (``iteration=0``), then in every EM iteration, before its
  :meth:`~Callback.on_epoch_end`;
- :meth:`Callback.on_fit_end` once, after the fitted state is published
  (not when the fit fails).

Callbacks observe: they receive what the loop has already computed, and the
estimator's fitted attributes (``mixture_``, ``labels_``, ...) are set only
when the fit ends. ``verbose`` printing is the callback :class:`PrintProgress`.
"""

__all__ = ["Callback", "PrintProgress"]


class Callback:
    """Base class of the training observers; every method does nothing.

    Override the methods you need. A callback is a parameter of the
    estimator, so it is deep-copied by :func:`~sklearn.base.clone` and pickled
    with the model: keep its state small and picklable.
    """

    def on_fit_begin(self, estimator, *, n_samples, continuing):
        """Called once before training.

        Parameters
        ----------
        estimator : BaseDeepClusterer
            The estimator being fitted; its networks exist from here on.
        n_samples : int
            Rows of the training data.
        continuing : bool
            True when a ``warm_start`` fit continues from the fitted state.
        """

    def on_epoch_begin(self, estimator, *, stage, epoch, n_epochs):
        """Called before each pretraining epoch (``stage="pretrain"``) and each
        EM iteration (``stage="EM"``); ``epoch`` counts from 0 in each stage."""

    def on_batch_begin(self, estimator, *, stage, batch_size):
        """Called before each optimiser step (loss, backward pass and update)."""

    def on_batch_end(self, estimator, *, stage, batch_size, loss):
        """Called after each optimiser step with the batch's loss (a float)."""

    def on_epoch_end(self, estimator, *, stage, epoch, n_epochs, loss, seconds, n_clusters=None):
        """Called after each pretraining epoch and each EM iteration.

        Parameters
        ----------
        estimator : BaseDeepClusterer
        stage : {"pretrain", "EM"}
        epoch : int
            Index of the epoch in its stage, from 0.
        n_epochs : int
            Epochs of the stage (``pretrain_epochs`` or ``n_iter``).
        loss : float
            Mean training loss of the epoch's network step.
        seconds : float
            Wall time of the epoch, the E-step included for EM iterations.
        n_clusters : int or None
            Occupied clusters after the iteration's E-step (EM only).
        """

    def on_e_step_end(self, estimator, *, iteration, latents, mixture, n_clusters):
        """Called after each E-step.

        Parameters
        ----------
        estimator : BaseDeepClusterer
        iteration : int
            0 for the E-step after pretraining, then the EM iteration, from 1.
        latents : ndarray of shape (n_samples, latent_dim)
            The latent codes of the training data the mixture was fitted on
            (float64). Do not modify them.
        mixture : BayesianGaussianMixture
            The fitted mixture. Do not modify it; ``sklearn.base.clone`` it to
            fit a fresh one.
        n_clusters : int
            Components that are the most probable for some training row.
        """

    def on_fit_end(self, estimator):
        """Called once after a successful fit, with the fitted state published."""


class PrintProgress(Callback):
    """Print one line per epoch: the loss, the occupied clusters and the time.

    This is what ``verbose=1`` adds to the callbacks.
    """

    def on_epoch_end(self, estimator, *, stage, epoch, n_epochs, loss, seconds, n_clusters=None):
        extra = "" if n_clusters is None else f", clusters {n_clusters}"
        print(
            f"[{type(estimator).__name__}] {stage} {epoch + 1}/{n_epochs}: "
            f"loss {loss:.4f}{extra}, {seconds:.2f}s",
            flush=True,
        )
