"""Training and evaluation: one loop over batches serves both, and a Strategy is how it
works with other processes training the same model.

A step (``train_step``, or ``loss_step`` alone when evaluating) places the batch where
the model is (``backends.place``: the one host-to-device rule), runs forward, prepares
the target once and hands it to the loss's forward and its count of right predictions;
training goes on with backward, the strategy's ``after_backward`` and the optimizer.
``run_pass`` runs a step on every batch and adds up the loss, the right predictions and
the examples, over every process (``strategy.reduce``). fit, evaluate and predict are
built on these.

Nothing here imports MPI: ``fit(distributed=True)`` and ``evaluate(distributed=True)``
take their strategy from ``fastcnn.distributed`` when called so.
"""

import functools
import math
import sys
import time

import numpy as np

from .. import backends
from ..data import DataLoader
from .callbacks import History


class Strategy:
    """What a training loop asks about other processes; this base is one process alone,
    where every hook does nothing (``LOCAL``). ``fastcnn.distributed.DataParallel``
    implements the same hooks on MPI."""

    is_main = True          # the process that prints and writes checkpoints

    @classmethod
    def for_fit(cls, model, train, epochs, val):
        """(the strategy of a fit of model, the DataLoader this process trains on),
        before any training: an error here is raised on every process alike."""
        return LOCAL, train

    def eval_shard(self, data, batch_size):
        """The DataLoader of the share of data (a DataLoader, a dataset or arrays) that
        this process evaluates: all of it."""
        return data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size)

    def after_backward(self):
        """Between backward and the optimizer's step (where gradients are averaged)."""

    def reduce(self, values):
        """The sums over every process of a few numbers: values."""
        return values

    def end_epoch(self):
        """After an epoch's last step, before its evaluation and callbacks."""

    def abort(self, error):
        """A fit fails with error: end whatever waits for this process (nothing)."""


LOCAL = Strategy()


def _distributed(name):
    """fastcnn.distributed's strategy called name, imported only when asked for."""
    from .. import distributed
    return getattr(distributed, name)


# ---------------------------------------------------------------- one step


def loss_step(model, x, y, correct=None):
    """Forward and loss on one batch -> (loss, correct), what training and evaluation
    steps share: x goes where the model is, in its dtype; y is prepared once, for the
    loss and its count of right predictions (added to correct, a counter, if given)."""
    model.loss.forget()
    out = model.forward(backends.place(x, model.device, model._dtype()))
    y = model.loss.prepare_target(out, y)
    loss = model.loss.forward(out, y, prepared=True)
    return loss, model.loss.correct(out, y, into=correct, prepared=True)


def train_step(model, x, y, correct=None):
    """One step on one batch: forward, loss, backward, update -> (loss, correct).
    correct: how many predictions were right, or None if the loss does not classify.
    Given correct= a counter (a one-element int64 array where the model lives, as fit
    keeps), the count is added to it instead and the counter returned: on the GPU the
    loss is then the step's one copy to the host."""
    loss, correct = loss_step(model, x, y, correct)
    model.backward(model.loss.backward(), need_dx=False)
    model.strategy.after_backward()
    model.optimizer.step()
    return loss, correct


# ---------------------------------------------------------------- one pass


def run_pass(model, batches, step, strategy, bar=None):
    """step(x, y, counter) on every batch -> the logs over every process's batches: the
    mean loss, and the accuracy for a classifying loss. The loop of fit and evaluate."""
    total = seen = 0.0
    counter, correct = _counter(model), None
    for batch in batches:
        if len(batch) < 2:
            raise ValueError(f"batches must be (inputs, targets), got a batch of "
                             f"{len(batch)} array(s)")
        x, y = batch[0], batch[1]
        loss, correct = step(x, y, counter)
        total += loss * len(x)
        seen += len(x)
        # The count is read only when the bar has just been redrawn (at most ~10 times
        # a second): on the GPU each read is a copy; the bar shows it at its next redraw.
        if bar is not None and bar.update(1):
            bar.set_postfix_str(_format(_logs(total, _count(correct), seen)), refresh=False)
    correct = _count(correct)
    total, hits, seen, classifies = strategy.reduce(
        [total, correct or 0, seen, correct is not None])
    return _logs(float(total), float(hits) if classifies else None, float(seen))


def _counter(model):
    """A running count of right predictions, kept where the model computes."""
    return backends.get("cuda" if model.device == "cuda" else "cpu").zeros((1,), np.int64)


def _count(counter):
    """The count in a counter (None for none), copied from the GPU if it lives there."""
    return None if counter is None else int(backends.to_host(counter)[0])


def _logs(total, correct, seen):
    logs = {"loss": total / seen if seen else math.nan}
    if correct is not None:
        logs["accuracy"] = correct / seen
    return logs


# ---------------------------------------------------------------- fit, evaluate, predict


def fit(model, train, epochs=1, val=None, callbacks=(), verbose=1, batch_size=32,
        distributed=False):
    """Train for epochs passes over train (a DataLoader, or an (x, y) tuple batched by
    batch_size and shuffled). val (same forms) is evaluated after every epoch.
    verbose: 1 a progress bar per epoch on a terminal (a line per epoch otherwise),
    2 a line per epoch, 0 nothing. Returns the History.

    distributed=True, under mpiexec: data-parallel training (fastcnn.distributed).
    Every rank runs this same call; each trains on its shard of train, with train's
    batch size (so a step sees batch_size x ranks examples), and the ranks average
    their gradients every step. Logs and val metrics are over all ranks' data; only
    rank 0 prints and writes checkpoints. Without mpiexec, an ordinary fit."""
    _require_compiled(model, "fit")
    if not isinstance(train, DataLoader):
        train = DataLoader(train, batch_size=batch_size, shuffle=True)
    kind = _distributed("DataParallel") if distributed else Strategy
    previous = model.parallel
    strategy, train = kind.for_fit(model, train, epochs, val)
    if strategy is not LOCAL:
        model.parallel = strategy       # train_step's after_backward, ModelCheckpoint's is_main
    try:
        return _fit(model, train, epochs, val, callbacks,
                    verbose if strategy.is_main else 0, strategy)
    except BaseException as e:
        # Other processes may be waiting for this one: end them rather than leave them
        # hanging, even if a caller catches this.
        strategy.abort(e)
        raise
    finally:
        model.parallel = previous


def _fit(model, train, epochs, val, callbacks, verbose, strategy):
    history = History()
    callbacks = [history] + list(callbacks or ())
    for cb in callbacks:
        cb.set_model(model)
    model.stop_training = False
    for cb in callbacks:
        cb.on_train_begin()
    for epoch in range(1, epochs + 1):
        for cb in callbacks:
            cb.on_epoch_begin(epoch)
        logs = _train_epoch(model, train, epoch, epochs, val, verbose, strategy)
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    for cb in callbacks:
        cb.on_train_end()
    return history


def _train_epoch(model, train, epoch, epochs, val, verbose, strategy):
    bar = _progress(len(train), f"epoch {epoch}/{epochs}", verbose)
    model.train()
    start = time.perf_counter()
    logs = run_pass(model, train, model.train_step, strategy, bar)
    strategy.end_epoch()
    logs["time"] = time.perf_counter() - start
    if model.optimizer is not None and hasattr(model.optimizer, "lr"):
        logs["lr"] = model.optimizer.lr
    if val is not None:
        evaluated = time.perf_counter()
        scores = _evaluate(model, val, 500, strategy)
        logs.update({"val_" + k: v for k, v in scores.items()})
        if bar is not None:   # keep the evaluation out of the bar's time and rate
            bar.start_t += time.perf_counter() - evaluated
    if bar is not None:
        bar.set_postfix_str(_format(logs))
        bar.close()
    elif verbose:
        print(f"epoch {epoch}/{epochs}  {_format(logs)}", flush=True)
    return logs


def evaluate(model, data, batch_size=500, distributed=False):
    """Mean loss (and accuracy, for classification) over data, in eval mode.
    distributed=True (a collective: every rank calls it with the same data): each rank
    evaluates its share of data, and the sums are added across ranks."""
    _require_compiled(model, "evaluate")
    strategy = _distributed("World")() if distributed else LOCAL
    return _evaluate(model, data, batch_size, strategy)


def _evaluate(model, data, batch_size, strategy):
    data = strategy.eval_shard(data, batch_size)
    with eval_mode(model):
        return run_pass(model, data, functools.partial(loss_step, model), strategy)


def predict(model, x, batch_size=500):
    """The model's outputs for x (N, ...), in eval mode, as a NumPy array."""
    out = None
    dtype = model._dtype()
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            batch = backends.place(x[start:start + batch_size], model.device, dtype)
            y = backends.to_host(model.forward(batch))
            if out is None:
                out = np.empty((len(x),) + y.shape[1:], y.dtype)
            out[start:start + len(y)] = y
    return out


def _require_compiled(model, what):
    if model.loss is None or (what == "fit" and model.optimizer is None):
        raise RuntimeError(f"{what}: call model.compile(optimizer=..., loss=...) first")


class eval_mode:
    """Switch a model to eval mode for a block, restoring each layer's mode after."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.modes = [layer.training for layer in self.model.layers]
        self.model.eval()

    def __exit__(self, *exc):
        for layer, mode in zip(self.model.layers, self.modes):
            layer.train(mode)


# ---------------------------------------------------------------- output


def _format(logs):
    parts = []
    for k, v in logs.items():
        if k == "time":
            parts.append(f"{v:.1f} s")
        elif "accuracy" in k:
            parts.append(f"{k} {100 * v:.2f}%")
        elif k == "lr":
            parts.append(f"lr {v:.2g}")
        else:
            parts.append(f"{k} {v:.4f}")
    return "  ".join(parts)


def _progress(total, desc, verbose):
    """A tqdm bar on a terminal with verbose=1, else None."""
    if verbose != 1 or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="batch", leave=True, dynamic_ncols=True)
