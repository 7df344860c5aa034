"""Sequential: a stack of layers with a training loop, callbacks, and save/load.

    model = Sequential(Conv2d(1, 32, 3, padding=1), ReLU(), ..., Linear(3136, 10))
    model.compile(optimizer=Adam(model.parameters(), lr=1e-3), loss=SoftmaxCrossEntropy())
    history = model.fit(DataLoader((x, y), batch_size=100, shuffle=True), epochs=15,
                        val=(x_val, y_val))

The forward pass runs the layers in order and the backward pass in reverse;
nothing here computes anything itself.
"""

import json
import math
import os
import sys
import tempfile
import time
import zipfile

import numpy as np

from . import backends
from . import distributed as dist
from .data import DataLoader, as_dataset
from .nn.layers import LAYERS, Layer
from .optim import parameters

FORMAT = "fastcnn.Sequential"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that cannot be read: truncated, corrupted, or not matching the model."""


class Sequential:
    """Layers applied one after the other; forward, backward, fit, evaluate, predict."""

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: argument {i} is not a layer "
                                f"({type(layer).__name__})")
            layer.index = i
        self.layers = list(layers)
        self.loss = None
        self.optimizer = None
        self.device = "cpu"
        self.stop_training = False
        self.input_shape = None      # one example's shape, seen by the last forward pass
        self.parallel = None         # a distributed.DataParallel averaging the gradients

    # ---- the layers

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        inner = "".join(f"\n  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"

    def parameters(self):
        """Parameter handles of every layer, for an optimizer."""
        return [p for layer in self.layers for p in parameters(layer)]

    def num_params(self):
        return sum(layer.num_params() for layer in self.layers)

    def train(self, mode=True):
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def to(self, device):
        """Move parameters, gradients, buffers and the optimizer's state to "cpu" or "cuda"."""
        for layer in self.layers:
            layer.to(device)
        if self.optimizer is not None:
            self.optimizer.to(device)
        if self.loss is not None:
            self.loss.to(device)
        self.device = device
        return self

    # ---- forward and backward

    def forward(self, x):
        for layer in self.layers:   # release the arrays saved last time, so buffers recycle
            layer.forget()
        self.input_shape = tuple(x.shape[1:])
        for layer in self.layers:
            x = layer.forward(x)
        return x

    __call__ = forward

    def backward(self, dy, need_dx=True):
        """Backpropagate dy (d loss / d output) through every layer, writing their grads.
        Returns dx of the input, or None with need_dx=False, which also skips the layers
        below the first one with parameters."""
        first = next((i for i, layer in enumerate(self.layers) if layer.params), 0)
        for i in range(len(self.layers) - 1, -1, -1):
            if not need_dx and i < first:
                break
            dy = self.layers[i].backward(dy, need_dx or i > first)
        return dy if need_dx else None

    # ---- training

    def compile(self, optimizer, loss):
        """The optimizer and the loss that fit and evaluate use."""
        self.optimizer, self.loss = optimizer, loss
        return self

    def _require_compiled(self, what):
        if self.loss is None or (what == "fit" and self.optimizer is None):
            raise RuntimeError(f"{what}: call model.compile(optimizer=..., loss=...) first")

    def _on_device(self, x):
        """A host batch in the parameters' dtype, moved to the model's device."""
        if not backends.on_gpu(x):
            x = np.asarray(x)
            dtype = self._dtype()
            if dtype is not None and x.dtype != dtype:
                x = x.astype(dtype)
        return backends.to_device(x) if self.device == "cuda" else x

    def _dtype(self):
        for layer in self.layers:
            for p in layer.params.values():
                return p.dtype
        return None

    def train_step(self, x, y, correct=None):
        """One step on one batch: forward, loss, backward, update -> (loss, correct).
        correct: how many predictions were right, or None if the loss does not classify.
        Given correct= a counter (a one-element int64 array where the model lives, as fit
        keeps), the count is added to it instead and the counter returned: on the GPU the
        loss is then the step's one copy to the host."""
        self.loss.forget()
        x = self._on_device(x)
        out = self.forward(x)
        y = self.loss.prepare_target(out, y)
        loss = self.loss.forward(out, y)
        correct = self.loss.correct(out, y, into=correct)
        self.backward(self.loss.backward(), need_dx=False)
        if self.parallel is not None:
            self.parallel.average_gradients()
        self.optimizer.step()
        return loss, correct

    def _counter(self):
        """A running count of right predictions, kept where the model computes."""
        return backends.get("cuda" if self.device == "cuda" else "cpu").zeros((1,), np.int64)

    def fit(self, train, epochs=1, val=None, callbacks=(), verbose=1, batch_size=32,
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
        self._require_compiled("fit")
        if not isinstance(train, DataLoader):
            train = DataLoader(train, batch_size=batch_size, shuffle=True)
        if not distributed:
            return self._fit(train, epochs, val, callbacks, verbose, None)
        previous = self.parallel
        train = dist.shard(train)
        # What differs across ranks would leave some waiting in a collective: refuse it.
        val_size = None if val is None else len(
            val.dataset if isinstance(val, DataLoader) else as_dataset(val))
        parallel = dist.DataParallel(self, check={
            "steps per epoch": len(train), "epochs": epochs, "validation examples": val_size})
        try:
            return self._fit(train, epochs, val, callbacks, verbose if dist.is_main() else 0,
                             parallel)
        except BaseException as e:
            # The other ranks are, or soon will be, waiting for this one in an allreduce:
            # end them all rather than leave them hanging, even if a caller catches this.
            dist.abort(e)
            raise
        finally:
            self.parallel = previous

    def _fit(self, train, epochs, val, callbacks, verbose, parallel):
        history = History()
        callbacks = [history] + list(callbacks or ())
        for cb in callbacks:
            cb.set_model(self)
        self.stop_training = False
        for cb in callbacks:
            cb.on_train_begin()
        for epoch in range(1, epochs + 1):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            logs = self._train_epoch(train, epoch, epochs, val, verbose, parallel)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end()
        return history

    def _train_epoch(self, train, epoch, epochs, val, verbose, parallel):
        bar = _progress(len(train), f"epoch {epoch}/{epochs}", verbose)
        self.train()
        start = time.perf_counter()
        total = seen = 0.0
        counter, correct = self._counter(), None
        for batch in train:
            if len(batch) < 2:
                raise ValueError(f"fit: batches must be (inputs, targets), got a batch of "
                                 f"{len(batch)} array(s)")
            x, y = batch[0], batch[1]
            loss, correct = self.train_step(x, y, counter)
            total += loss * len(x)
            seen += len(x)
            # The count is read only when the bar has just been redrawn (at most ~10 times
            # a second): on the GPU each read is a copy; the bar shows it at its next redraw.
            if bar is not None and bar.update(1):
                bar.set_postfix_str(_format(_epoch_logs(total, _count(correct), seen)),
                                    refresh=False)
        correct = _count(correct)
        if parallel is not None:    # the epoch over all ranks' shards
            total, correct, seen = _reduced(total, correct, seen)
            dist.sync_buffers(self)
        logs = _epoch_logs(total, correct, seen)
        logs["time"] = time.perf_counter() - start
        if self.optimizer is not None and hasattr(self.optimizer, "lr"):
            logs["lr"] = self.optimizer.lr
        if val is not None:
            evaluated = time.perf_counter()
            scores = self.evaluate(val, distributed=parallel is not None)
            logs.update({"val_" + k: v for k, v in scores.items()})
            if bar is not None:   # keep the evaluation out of the bar's time and rate
                bar.start_t += time.perf_counter() - evaluated
        if bar is not None:
            bar.set_postfix_str(_format(logs))
            bar.close()
        elif verbose:
            print(f"epoch {epoch}/{epochs}  {_format(logs)}", flush=True)
        return logs

    # ---- evaluation

    def evaluate(self, data, batch_size=500, distributed=False):
        """Mean loss (and accuracy, for classification) over data, in eval mode.
        distributed=True (a collective: every rank calls it with the same data): each rank
        evaluates its share of data, and the sums are added across ranks."""
        self._require_compiled("evaluate")
        if distributed:
            data = dist.eval_shard(data, batch_size)
        elif not isinstance(data, DataLoader):
            data = DataLoader(data, batch_size=batch_size)
        total = seen = 0.0
        counter, correct = self._counter(), None
        with _eval_mode(self):
            for batch in data:
                self.loss.forget()
                out = self.forward(self._on_device(batch[0]))
                y = self.loss.prepare_target(out, batch[1])
                total += self.loss.forward(out, y) * len(batch[0])
                correct = self.loss.correct(out, y, into=counter)
                seen += len(batch[0])
        correct = _count(correct)
        if distributed:
            total, correct, seen = _reduced(total, correct, seen)
        return _epoch_logs(total, correct, seen)

    def predict(self, x, batch_size=500):
        """The model's outputs for x (N, ...), in eval mode, as a NumPy array."""
        out = None
        with _eval_mode(self):
            for start in range(0, len(x), batch_size):
                y = backends.to_host(self.forward(self._on_device(x[start:start + batch_size])))
                if out is None:
                    out = np.empty((len(x),) + y.shape[1:], y.dtype)
                out[start:start + len(y)] = y
        return out

    # ---- description

    def summary(self, input_shape=None):
        """A table of the layers, their output shapes and parameter counts (a string).
        input_shape: one example's shape, e.g. (1, 28, 28); by default the last one seen."""
        input_shape = tuple(input_shape or self.input_shape or ())
        shapes = self._output_shapes(input_shape) if input_shape else [None] * len(self.layers)
        rows = [("#", "layer", "output shape", "params")]
        for i, (layer, shape) in enumerate(zip(self.layers, shapes)):
            shown = "?" if shape is None else str(("N",) + shape).replace("'", "")
            rows.append((str(i), repr(layer), shown, f"{layer.num_params():,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        lines = ["  ".join(r[c].ljust(widths[c]) if c < 3 else r[c].rjust(widths[c])
                           for c in range(4)) for r in rows]
        rule = "-" * len(lines[0])
        return "\n".join([lines[0], rule] + lines[1:] + [
            rule, f"total parameters: {self.num_params():,}"
                  + (f"   (input {('N',) + input_shape})".replace("'", "")
                     if input_shape else "")])

    def _output_shapes(self, input_shape):
        """Each layer's output shape, from a forward pass of one zero example in eval mode."""
        where = backends.get("cuda" if self.device == "cuda" else "cpu")
        x = where.zeros((1,) + input_shape, self._dtype() or np.float32)
        shapes = []
        with _eval_mode(self):
            for layer in self.layers:
                layer.forget()
            for layer in self.layers:
                x = layer.forward(x)
                shapes.append(tuple(x.shape[1:]))
            for layer in self.layers:
                layer.forget()
        return shapes

    # ---- saving and loading

    def architecture(self):
        return {"format": FORMAT, "version": FORMAT_VERSION,
                "layers": [{"type": type(layer).__name__, "config": layer.config()}
                           for layer in self.layers]}

    def save(self, path):
        """Parameters, running statistics and architecture to a .npz file at path, written
        to a temporary file first and renamed, so a crash never leaves half a file."""
        arrays = {"architecture": np.array(json.dumps(self.architecture()))}
        for i, layer in enumerate(self.layers):
            for kind in ("params", "buffers"):
                for k, v in getattr(layer, kind).items():
                    arrays[f"{i}/{kind}/{k}"] = backends.to_host(v)
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    @classmethod
    def load(cls, path):
        """A model rebuilt from a file written by save (no pickle involved)."""
        arch, arrays = _read(path)
        layers = []
        for i, spec in enumerate(arch["layers"]):
            kind = LAYERS.get(spec.get("type"))
            if kind is None:
                raise ModelFileError(f"{path}: layer {i} has unknown type {spec.get('type')!r}")
            config = {k: tuple(v) if isinstance(v, list) else v
                      for k, v in spec.get("config", {}).items()}
            dtype = _file_dtype(arrays, i)
            try:
                layers.append(kind(**config, **({"dtype": dtype} if dtype else {})))
            except (TypeError, ValueError) as e:
                raise ModelFileError(f"{path}: layer {i} {kind.__name__}{config}: {e}") from None
        model = cls(*layers)
        model._set_arrays(path, arrays)
        return model

    def load_weights(self, path):
        """Parameters and running statistics from a file written by save, into this model
        (whose architecture must match the file's)."""
        arch, arrays = _read(path)
        theirs = arch["layers"]
        if len(theirs) != len(self.layers):
            raise ModelFileError(f"{path}: the file has {len(theirs)} layers, the model "
                                 f"{len(self.layers)}")
        for layer, spec in zip(self.layers, theirs):
            if spec.get("type") != type(layer).__name__:
                raise ModelFileError(f"{path}: {layer.name} is a {type(layer).__name__} in the "
                                     f"model but a {spec.get('type')} in the file")
        self._set_arrays(path, arrays)
        return self

    def _set_arrays(self, path, arrays):
        expected = set()
        for i, layer in enumerate(self.layers):
            for kind in ("params", "buffers"):
                mine = getattr(layer, kind)
                for k, v in mine.items():
                    key = f"{i}/{kind}/{k}"
                    expected.add(key)
                    if key not in arrays:
                        raise ModelFileError(f"{path}: {layer.name}: the file has no {k}")
                    a = arrays[key]
                    if tuple(a.shape) != tuple(v.shape):
                        raise ModelFileError(
                            f"{path}: {layer.name}: {k} has shape {tuple(a.shape)} in the "
                            f"file but {tuple(v.shape)} in the model")
                    if a.dtype.kind != "f":
                        raise ModelFileError(f"{path}: {layer.name}: {k} is {a.dtype}, "
                                             f"not floating point")
        extra = sorted(set(arrays) - expected)
        if extra:
            raise ModelFileError(f"{path}: arrays the model has no place for: {extra[:5]}")
        for i, layer in enumerate(self.layers):
            for kind in ("params", "buffers"):
                mine = getattr(layer, kind)
                for k, v in mine.items():
                    a = np.ascontiguousarray(arrays[f"{i}/{kind}/{k}"], dtype=v.dtype)
                    mine[k] = backends.mover(self.device)(a)
            layer.forget()


def load(path):
    """A model rebuilt from a file written by Sequential.save."""
    return Sequential.load(path)


def _read(path):
    """(architecture, {name: array}) of a model file, with clear errors on bad files."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ModelFileError(f"{path}: not a readable model file (truncated or corrupted?): "
                             f"{type(e).__name__}: {e}") from None
    if "architecture" not in arrays:
        raise ModelFileError(f"{path}: not a fastcnn model file (no architecture entry)")
    try:
        arch = json.loads(str(arrays.pop("architecture")[()]))
    except (ValueError, TypeError, IndexError) as e:
        raise ModelFileError(f"{path}: corrupted architecture entry: {e}") from None
    if not isinstance(arch, dict) or arch.get("format") != FORMAT or not isinstance(
            arch.get("layers"), list):
        raise ModelFileError(f"{path}: not a fastcnn Sequential model file")
    if arch.get("version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{path}: written by a newer fastcnn (format version "
                             f"{arch['version']} > {FORMAT_VERSION})")
    return arch, arrays


def _file_dtype(arrays, i):
    for key, a in arrays.items():
        if key.startswith(f"{i}/"):
            return a.dtype
    return None


# ---------------------------------------------------------------- helpers


class _eval_mode:
    """Switch a model to eval mode for a block, restoring each layer's mode after."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.modes = [layer.training for layer in self.model.layers]
        self.model.eval()

    def __exit__(self, *exc):
        for layer, mode in zip(self.model.layers, self.modes):
            layer.train(mode)


def _count(counter):
    """The count in a counter (None for none), copied from the GPU if it lives there."""
    return None if counter is None else int(backends.to_host(counter)[0])


def _reduced(total, correct, seen):
    """The sums of loss x count, correct and count over all ranks."""
    total, hits, seen, classifies = dist.allreduce_sum(
        [total, correct or 0, seen, correct is not None])
    return float(total), (float(hits) if classifies else None), float(seen)


def _epoch_logs(total, correct, seen):
    logs = {"loss": total / seen if seen else math.nan}
    if correct is not None:
        logs["accuracy"] = correct / seen
    return logs


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


# ---------------------------------------------------------------- callbacks


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
        if self.model.parallel is None or self.model.parallel.rank == 0:
            self.model.save(self.path.format(epoch=epoch, **logs))


class LearningRateScheduler(Callback):
    """Set the optimizer's lr before every epoch to schedule(epoch, lr)."""

    def __init__(self, schedule):
        self.schedule = schedule

    def on_epoch_begin(self, epoch):
        opt = self.model.optimizer
        opt.lr = float(self.schedule(epoch, opt.lr))
