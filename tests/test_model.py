"""Sequential: summary, fit/evaluate/predict, callbacks, save/load and its errors, the
plot, and flat memory across epochs; the training loop and its strategy hooks; another
kind of model built on the Model base."""

import os
import tracemalloc

import numpy as np
import pytest

from fastcnn import nn
from fastcnn.data import DataLoader
from fastcnn.model import (EarlyStopping, LearningRateScheduler, Model, ModelCheckpoint,
                           ModelFileError, Sequential, Strategy, load)
from fastcnn.optim import SGD, Adam


def small_cnn(seed=0):
    model = Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=seed), nn.BatchNorm2d(4), nn.ReLU(),
                       nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.25, rng=seed),
                       nn.Linear(4 * 4 * 4, 3, rng=seed + 1))
    return model.compile(Adam(model.parameters(), lr=0.01), nn.SoftmaxCrossEntropy())


def blobs(n=60, seed=0):
    """Three classes of 8x8 images: a bright row, column or diagonal, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, 1, 8, 8)).astype(np.float32)
    for i, label in enumerate(y):
        if label == 0:
            x[i, 0, 3] += 1
        elif label == 1:
            x[i, 0, :, 3] += 1
        else:
            x[i, 0][np.eye(8, dtype=bool)] += 1
    return x, y


def test_summary():
    model = small_cnn()
    text = model.summary((1, 8, 8))
    assert "Conv2d(1, 4, 3, padding=1)" in text and "(N, 4, 8, 8)" in text
    assert "(N, 64)" in text and "(N, 3)" in text
    assert f"total parameters: {40 + 8 + 195:,}" in text
    assert "?" in small_cnn().summary()          # no input shape seen yet
    model.forward(np.zeros((2, 1, 8, 8), np.float32))
    assert "(N, 3)" in model.summary()          # the last input's shape


def test_fit_evaluate_predict():
    x, y = blobs(90)
    model = small_cnn()
    history = model.fit((x[:60], y[:60]), epochs=4, val=(x[60:], y[60:]), batch_size=10,
                        verbose=0)
    assert history.epochs == [1, 2, 3, 4]
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "time"}
    assert history["loss"][-1] < history["loss"][0]
    scores = model.evaluate((x[60:], y[60:]))
    assert scores["accuracy"] == history["val_accuracy"][-1] and scores["accuracy"] > 0.9
    out = model.predict(x[60:], batch_size=7)
    assert out.shape == (30, 3) and isinstance(out, np.ndarray)
    assert (out.argmax(1) == y[60:]).mean() == scores["accuracy"]
    assert all(layer.training for layer in model)  # predict and evaluate restore the mode
    with pytest.raises(RuntimeError, match="call model.compile"):
        Sequential(nn.Linear(2, 2)).fit((np.zeros((2, 2)), np.zeros(2, int)))


def test_fit_prints_one_line_per_epoch_when_not_a_terminal(capsys):
    x, y = blobs(20)
    small_cnn().fit(DataLoader((x, y), batch_size=10), epochs=2, verbose=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2  loss ")
    small_cnn().fit(DataLoader((x, y), batch_size=10), epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_progress_bar_shows_the_running_counts_when_redrawn(monkeypatch):
    """The bar gets fresh numbers only after a redraw (each costs a copy on the GPU)."""
    from fastcnn.model import training

    class Bar:
        postfixes, redraws, start_t = [], iter([False, True, False]), 0.0

        def update(self, n):
            return next(self.redraws)

        def set_postfix_str(self, text, refresh=True):
            self.postfixes.append(text)

        def close(self):
            pass

    monkeypatch.setattr(training, "_progress", lambda *args: Bar())
    x, y = blobs(30)
    logs = small_cnn().fit(DataLoader((x, y), batch_size=10), verbose=1).history
    first, last = Bar.postfixes
    assert first.startswith("loss ") and "accuracy" in first and "accuracy" in last
    assert f"accuracy {100 * logs['accuracy'][0]:.2f}%" in last


def test_callbacks(tmp_path):
    x, y = blobs(40)
    model = small_cnn()
    model.optimizer = SGD(model.parameters(), lr=0.0)    # no progress: patience runs out
    stop = EarlyStopping(monitor="loss", patience=2, min_delta=1.0)
    best = ModelCheckpoint(tmp_path / "best.npz", monitor="val_accuracy", save_best_only=True)
    every = ModelCheckpoint(str(tmp_path / "epoch-{epoch}.npz"))
    lrs = LearningRateScheduler(lambda epoch, lr: 0.0 if epoch < 10 else 1.0)
    history = model.fit((x, y), epochs=10, val=(x, y), callbacks=[stop, best, every, lrs],
                        verbose=0)
    assert history.epochs == [1, 2, 3] and stop.stopped_epoch == 3
    assert (tmp_path / "best.npz").exists()
    assert sorted(os.listdir(tmp_path)) == ["best.npz", "epoch-1.npz", "epoch-2.npz",
                                            "epoch-3.npz"]
    with pytest.raises(ValueError, match="monitor 'val_loss' is not in the epoch's logs"):
        small_cnn().fit((x, y), epochs=1, callbacks=[EarlyStopping()], verbose=0)


def test_early_stopping_restores_the_best_weights():
    x, y = blobs(40)
    model = small_cnn()
    stop = EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    model.optimizer = SGD(model.parameters(), lr=5.0)    # diverges: the first epoch is best
    history = model.fit((x, y), epochs=6, callbacks=[stop], verbose=0, batch_size=40)
    best = int(np.argmin(history["loss"]))
    assert stop.best == history["loss"][best]


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    x, y = blobs(20)
    history = small_cnn().fit((x, y), epochs=2, val=(x, y), verbose=0)
    history.plot(tmp_path / "history.png")
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- save and load


def trained(tmp_path):
    x, y = blobs(40)
    model = small_cnn()
    model.fit((x, y), epochs=1, verbose=0)      # running statistics move away from 0 and 1
    path = tmp_path / "model.npz"
    model.save(path)
    return model, path, x


def test_save_load_round_trip(tmp_path):
    model, path, x = trained(tmp_path)
    assert os.listdir(tmp_path) == ["model.npz"]      # no temporary file left behind
    want = model.predict(x)
    again = load(path)
    assert repr(again) == repr(model)
    np.testing.assert_array_equal(again.predict(x), want)
    fresh = small_cnn(seed=7)
    assert not np.array_equal(fresh.predict(x), want)
    np.testing.assert_array_equal(fresh.load_weights(path).predict(x), want)
    model.save(path)                                   # overwriting works too
    np.testing.assert_array_equal(Sequential.load(path).predict(x), want)


def test_the_newer_layers_save_and_load(tmp_path):
    """Their configs (tuples with None, float factors, padding modes) survive the file."""
    model = Sequential(
        nn.Conv2d(2, 4, 3, padding="same", groups=2, rng=0), nn.MaxPool2d(2, ceil_mode=True),
        nn.ConvTranspose2d(4, 4, 3, stride=2, output_padding=1, groups=4, rng=1),
        nn.Upsample(scale_factor=(0.5, 1.5), mode="bilinear", align_corners=True),
        nn.AdaptiveMaxPool2d((3, None)), nn.AvgPool2d(2, 1, count_include_pad=False,
                                                      divisor_override=3),
        nn.Flatten(2), nn.Conv1d(4, 2, 2, padding=(1, 0), rng=2), nn.AvgPool1d(2),
        nn.AdaptiveAvgPool1d(2), nn.MaxPool1d(2, 1, padding="same"), nn.LogSoftmax(-1),
        nn.Flatten(), nn.Softmax())
    x = np.random.default_rng(3).standard_normal((2, 2, 6, 5)).astype(np.float32)
    want = model.predict(x)
    model.save(tmp_path / "m.npz")
    again = load(tmp_path / "m.npz")
    assert repr(again) == repr(model)
    np.testing.assert_array_equal(again.predict(x), want)


def test_save_is_atomic(tmp_path, monkeypatch):
    model, path, _ = trained(tmp_path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        small_cnn(seed=3).save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


def test_load_errors(tmp_path):
    model, path, _ = trained(tmp_path)
    good = path.read_bytes()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelFileError, match="bad.npz: not a readable model file "
                       r"\(truncated or corrupted\?\)"):
        load(bad)
    middle = len(good) // 2
    bad.write_bytes(good[:middle] + bytes(255 - b for b in good[middle:middle + 64])
                    + good[middle + 64:])
    with pytest.raises(ModelFileError, match="truncated or corrupted"):
        load(bad)
    np.savez(bad, weights=np.zeros(3))
    with pytest.raises(ModelFileError, match="not a fastcnn model file"):
        load(bad)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.npz")


def test_load_weights_into_a_different_model(tmp_path):
    Sequential(nn.Linear(4, 3), nn.ReLU()).save(tmp_path / "a.npz")
    with pytest.raises(ModelFileError, match=r"layer 0 Linear\(5, 3\): weight has shape "
                       r"\(3, 4\) in the file but \(3, 5\) in the model"):
        Sequential(nn.Linear(5, 3), nn.ReLU()).load_weights(tmp_path / "a.npz")
    with pytest.raises(ModelFileError, match=r"layer 1 Tanh\(\) is a Tanh in the model but a "
                       r"ReLU in the file"):
        Sequential(nn.Linear(4, 3), nn.Tanh()).load_weights(tmp_path / "a.npz")
    with pytest.raises(ModelFileError, match="the file has 2 layers, the model 1"):
        Sequential(nn.Linear(4, 3)).load_weights(tmp_path / "a.npz")


# ---------------------------------------------------------------- memory


def test_memory_stays_flat_across_epochs():
    """After the first epoch, training allocates nothing that outlives a step, and the peak
    does not grow: the activations and gradients are reused buffers. (Python's free lists
    of small objects fill up over the first few thousand ops, hence a tolerance far below
    the size of one activation.)"""
    x, y = blobs(200)
    model = Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Flatten(), nn.Linear(256, 3))
    model.compile(Adam(model.parameters()), nn.SoftmaxCrossEntropy())
    loader = DataLoader((x, y), batch_size=100, shuffle=True, seed=0)
    model.fit(loader, epochs=1, verbose=0)

    def buffers():
        return {(layer.index, k): id(v)
                for layer in model for k, v in layer.reuse.arrays.items()}

    first = buffers()
    tracemalloc.start()
    try:
        peaks, sizes = [], []
        for _ in range(4):
            tracemalloc.reset_peak()
            model.fit(loader, epochs=1, verbose=0)
            size, peak = tracemalloc.get_traced_memory()
            peaks.append(peak)
            sizes.append(size)
            assert buffers() == first      # the very same arrays, step after step
    finally:
        tracemalloc.stop()
    activation = 100 * 16 * 8 * 8 * 4              # the conv's output, in bytes (400 KiB)
    assert max(sizes) - min(sizes) < activation / 8, sizes
    assert max(peaks) - min(peaks) < activation / 8, peaks


# ---------------------------------------------------------------- the training loop


def test_fit_and_evaluate_run_one_batch_loop(monkeypatch):
    """fit's training pass, its validation and evaluate are the same loop (run_pass)."""
    from fastcnn.model import training
    passes, run_pass = [], training.run_pass

    def spy(model, batches, step, strategy, bar=None):
        passes.append(getattr(step, "__name__", None) or step.func.__name__)
        return run_pass(model, batches, step, strategy, bar)

    monkeypatch.setattr(training, "run_pass", spy)
    x, y = blobs(30)
    model = small_cnn()
    model.fit((x, y), epochs=2, val=(x, y), verbose=0)
    model.evaluate((x, y))
    assert passes == ["train_step", "loss_step", "train_step", "loss_step", "loss_step"]


def test_a_step_prepares_its_target_once(monkeypatch):
    x, y = blobs(30)
    model = small_cnn()
    calls, prepare = [], model.loss.prepare_target
    model.loss.prepare_target = lambda pred, target: calls.append(1) or prepare(pred, target)
    model.fit(DataLoader((x, y), batch_size=10), val=DataLoader((x, y), batch_size=15),
              verbose=0)
    assert len(calls) == 3 + 2          # 3 training steps, 2 validation batches
    model.evaluate((x, y), batch_size=30)
    assert len(calls) == 3 + 2 + 1


class Recorder(Strategy):
    """A strategy that records what the loop asks of it, as if a second process doubled
    every sum."""

    is_main = False
    calls = []

    @classmethod
    def for_fit(cls, model, train, epochs, val):
        cls.calls.append("for_fit")
        return cls(), train

    def eval_shard(self, data, batch_size):
        self.calls.append("eval_shard")
        return super().eval_shard(data, batch_size)

    def after_backward(self):
        self.calls.append("after_backward")

    def reduce(self, values):
        self.calls.append("reduce")
        return [2 * v for v in values[:3]] + [values[3]]

    def end_epoch(self):
        self.calls.append("end_epoch")

    def abort(self, error):
        self.calls.append(f"abort {error}")


def test_the_strategy_hooks(monkeypatch, capsys):
    """A distributed fit talks to fastcnn.distributed only through its strategy's hooks."""
    from fastcnn.model import training
    monkeypatch.setattr(training, "_distributed", lambda name: Recorder)
    x, y = blobs(20)
    model = small_cnn()
    plain = small_cnn().fit(DataLoader((x, y), batch_size=10), val=(x, y), verbose=0)
    history = model.fit(DataLoader((x, y), batch_size=10), val=(x, y), verbose=2,
                        distributed=True)
    assert Recorder.calls == ["for_fit", "after_backward", "after_backward", "reduce",
                              "end_epoch", "eval_shard", "reduce"]
    assert capsys.readouterr().out == ""            # is_main False: nothing printed
    assert history["loss"] == plain["loss"] and history["val_accuracy"] == plain["val_accuracy"]
    assert model.parallel is None
    Recorder.calls.clear()
    model.train_step = lambda *args: 1 / 0
    with pytest.raises(ZeroDivisionError):
        model.fit((x, y), verbose=0, distributed=True)
    assert Recorder.calls == ["for_fit", "abort division by zero"]


def test_train_step_calls_the_attached_strategy():
    """A hand-written loop's DataParallel is model.parallel: train_step averages there."""
    x, y = blobs(10)
    model = small_cnn()
    model.parallel = Recorder()
    Recorder.calls.clear()
    model.train_step(x, y)
    assert Recorder.calls == ["after_backward"]


# ---------------------------------------------------------------- another kind of model


class Residual(Model):
    """y = x + f(x), f a chain of layers: another kind of model, written with only what
    the Model contract asks for (NumPy's + makes it CPU-only)."""

    FORMAT = "tests.Residual"

    def __init__(self, *layers):
        super().__init__(layers)

    def forward(self, x):
        self.input_shape = tuple(x.shape[1:])
        for layer in self.layers:
            layer.forget()
        h = x
        for layer in self.layers:
            h = layer.forward(h)
        return x + h

    def backward(self, dy, need_dx=True):
        g = dy
        for layer in reversed(self.layers):
            g = layer.backward(g)
        return dy + g if need_dx else None

    def architecture(self):
        return {"format": self.FORMAT, "version": 1, "layers": self.layer_specs(),
                "skip": "identity"}

    @classmethod
    def from_architecture(cls, arch, layers):
        if arch.get("skip") != "identity":
            raise ValueError(f"unknown skip connection {arch.get('skip')!r}")
        return cls(*layers)

    def summary_rows(self, input_shape):
        return [(f"f{i}", repr(layer), input_shape if i == len(self.layers) - 1 else None,
                 layer.num_params()) for i, layer in enumerate(self.layers)]


def test_another_kind_of_model_trains_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = x + np.tanh(x @ rng.normal(size=(4, 4))).astype(np.float32)
    model = Residual(nn.Linear(4, 16, rng=1), nn.Tanh(), nn.Linear(16, 4, rng=2))
    model.compile(Adam(model.parameters(), lr=0.01), nn.MSE())
    best = ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss", save_best_only=True)
    history = model.fit(DataLoader((x, y), batch_size=16, shuffle=True, seed=3), epochs=5,
                        val=(x, y), verbose=0, callbacks=[best, EarlyStopping(patience=2)])
    assert history["loss"][-1] < history["loss"][0]
    assert model.evaluate((x, y))["loss"] == history["val_loss"][-1]
    assert "f2" in model.summary((4,)) and "total parameters: 148" in model.summary()
    model.save(tmp_path / "r.npz")
    again = load(tmp_path / "r.npz")
    assert type(again) is Residual
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    with pytest.raises(ModelFileError, match="holds a Residual, not a Sequential"):
        Sequential.load(tmp_path / "r.npz")
    assert type(Residual.load(tmp_path / "best.npz")) is Residual
    fresh = Residual(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 4))
    np.testing.assert_array_equal(fresh.load_weights(tmp_path / "r.npz").predict(x),
                                  model.predict(x))
    twin = Residual(nn.Linear(4, 16, rng=1), nn.Tanh(), nn.Linear(16, 4, rng=2))
    twin.compile(Adam(twin.parameters(), lr=0.01), nn.MSE())
    spread = twin.fit(DataLoader((x, y), batch_size=16, shuffle=True, seed=3), verbose=0,
                      distributed=True)
    assert spread["loss"][0] == history["loss"][0]     # a world of one: the same epoch
