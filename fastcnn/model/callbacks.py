"""Callbacks: hooks that fit calls around every epoch (History records the logs, and
EarlyStopping, ModelCheckpoint and LearningRateScheduler act on them), and the plot of
a History."""

import os

from .. import backends


class Callback:
    """Hooks fit calls; epochs count from 1; logs hold loss, accuracy, val_..., time, lr."""

    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self):
        pass

    def on_epoch_begin(self, epoch):
        pass

    def on_epoch_end(self, epoch, logs):
        pass

    def on_train_end(self):
        pass


class History(Callback):
    """Every epoch's logs: history.history["val_accuracy"] is a list, one entry an epoch."""

    def __init__(self):
        self.history = {}
        self.epochs = []

    def on_epoch_end(self, epoch, logs):
        self.epochs.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __getitem__(self, key):
        return self.history[key]

    def plot(self, path):
        """Loss and accuracy per epoch (training and validation) to a PNG file.
        Needs matplotlib (pip install 'fastcnn[plot]')."""
        plot_history(self, path)


def plot_history(history, path):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'fastcnn[plot]'") from None
    h = history.history
    panels = [k for k in ("loss", "accuracy") if k in h]
    fig = Figure(figsize=(5 * len(panels), 3.6), layout="constrained")
    for n, key in enumerate(panels, 1):
        ax = fig.add_subplot(1, len(panels), n)
        scale = 100 if key == "accuracy" else 1
        for name, style in ((key, "o-"), ("val_" + key, "s--")):
            if name in h:
                ax.plot(history.epochs, [scale * v for v in h[name]], style, ms=3,
                        label="held out" if name.startswith("val_") else "training")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)" if key == "accuracy" else key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(os.fspath(path), dpi=100)


def _mode(monitor, mode):
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


def _monitored(who, monitor, logs):
    if monitor not in logs:
        raise ValueError(f"{who}: monitor {monitor!r} is not in the epoch's logs "
                         f"({', '.join(logs)}); pass val= to fit for the val_ entries")
    return logs[monitor]


def _improved(mode, best, value, min_delta=0.0):
    """True when value beats best (None: nothing yet) by more than min_delta."""
    sign = 1 if mode == "min" else -1
    return best is None or sign * (best - value) > min_delta


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by min_delta for patience epochs;
    restore_best_weights puts back the best epoch's parameters."""

    def __init__(self, monitor="val_loss", patience=3, min_delta=0.0, mode="auto",
                 restore_best_weights=False):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode = _mode(monitor, mode)
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self):
        self.best, self.wait, self.best_weights, self.stopped_epoch = None, 0, None, None

    def on_epoch_end(self, epoch, logs):
        value = _monitored("EarlyStopping", self.monitor, logs)
        if _improved(self.mode, self.best, value, self.min_delta):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = [{k: backends.to_host(v).copy() for k, v in d.items()}
                                     for layer in self.model.layers
                                     for d in (layer.params, layer.buffers)]
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.model.stop_training = True
            self.stopped_epoch = epoch

    def on_train_end(self):
        if self.stopped_epoch is not None and self.best_weights is not None:
            saved = iter(self.best_weights)
            for layer in self.model.layers:
                for d in (layer.params, layer.buffers):
                    for k, v in next(saved).items():
                        d[k] = backends.mover(self.model.device)(v)


class ModelCheckpoint(Callback):
    """Save the model after every epoch (path may hold {epoch} and log names, e.g.
    "model-{epoch:02d}.npz"), or with save_best_only when `monitor` improved. In a
    distributed fit only rank 0 writes (all ranks hold the same model)."""

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        self.path, self.monitor, self.save_best_only = os.fspath(path), monitor, save_best_only
        self.mode = _mode(monitor, mode)
        self.best = None

    def on_epoch_end(self, epoch, logs):
        if self.save_best_only:
            value = _monitored("ModelCheckpoint", self.monitor, logs)
            if not _improved(self.mode, self.best, value):
                return
            self.best = value
        if self.model.strategy.is_main:
            self.model.save(self.path.format(epoch=epoch, **logs))


class LearningRateScheduler(Callback):
    """Set the optimizer's lr before every epoch to schedule(epoch, lr)."""

    def __init__(self, schedule):
        self.schedule = schedule

    def on_epoch_begin(self, epoch):
        opt = self.model.optimizer
        opt.lr = float(self.schedule(epoch, opt.lr))
