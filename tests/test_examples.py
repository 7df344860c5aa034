"""The examples run: each on a few hundred real digits for one epoch (a smoke test; the
figures in their docstrings come from full runs). They run in this process, as
`python examples/NAME.py` would run them, writing into a temporary folder."""

import importlib.util
import runpy
import sys
from pathlib import Path

import pytest

from mnist_data import mnist_dir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
QUICK = ["--epochs", "1", "--train", "200", "--held-out", "50", "--quiet"]
PLOTS = importlib.util.find_spec("matplotlib") is not None


def run_example(name, args, tmp_path, monkeypatch, capsys):
    if mnist_dir() is None:
        pytest.skip("real MNIST digits not found: set FASTCNN_MNIST_DIR or put them in "
                    "../shared/data/mnist")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", [name, "--data", str(mnist_dir()), "--out",
                                      str(tmp_path)] + QUICK + args)
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_resnet(tmp_path, monkeypatch, capsys):
    out = run_example("resnet.py", ["--width", "4"], tmp_path, monkeypatch, capsys)
    assert "layer2   Graph" in out and "held-out accuracy:" in out
    assert (tmp_path / "resnet.npz").exists()
    if PLOTS:
        for what in ("filters", "maps", "confusion"):
            assert (tmp_path / f"resnet_{what}.png").exists()


def test_transfer(tmp_path, monkeypatch, capsys):
    out = run_example("transfer.py", ["--head-epochs", "2", "--per-digit", "3",
                                      "--scratch-lrs", "1e-3"], tmp_path, monkeypatch, capsys)
    for row in ("from scratch", "frozen base, new head", "fine-tuned top block"):
        assert row in out
    assert (tmp_path / "transfer_base.npz").exists()
    assert not PLOTS or (tmp_path / "transfer_confusion.png").exists()


def test_autoencoder(tmp_path, monkeypatch, capsys):
    out = run_example("autoencoder.py", [], tmp_path, monkeypatch, capsys)
    assert "plain: held-out MSE" in out and "denoising: held-out MSE" in out
    assert (tmp_path / "autoencoder.npz").exists()
    assert (tmp_path / "autoencoder_denoising.npz").exists()
    assert not PLOTS or (tmp_path / "autoencoder.png").exists()


def test_the_readmes_own_layer(tmp_path, monkeypatch):
    """The README's guide to writing a layer: its code runs, gradcheck passes, and the
    layer trains, saves and loads in a model."""
    import numpy as np
    from fastcnn import nn
    from fastcnn.model import Sequential, load
    from fastcnn.optim import Adam
    readme = (EXAMPLES.parent / "README.md").read_text()
    start = readme.index("class Scale(Layer):")
    code = readme[readme.rindex("```python", 0, start) + len("```python"):
                  readme.index("```", start)]
    monkeypatch.setattr(nn, "LAYERS", dict(nn.LAYERS))     # the registration is undone after
    monkeypatch.setattr("fastcnn.model.io.LAYERS", nn.LAYERS)
    space = {}
    exec(code, space)                                        # gradcheck(...) inside
    model = Sequential(nn.Conv2d(1, 3, 3, rng=0), space["Scale"](3), nn.Flatten(),
                       nn.Linear(3 * 4 * 4, 2, rng=1))
    model.compile(Adam(model.parameters(), lr=0.05), nn.SoftmaxCrossEntropy())
    x = np.random.default_rng(2).standard_normal((8, 1, 6, 6)).astype(np.float32)
    model.fit((x, np.arange(8) % 2), epochs=2, verbose=0)
    assert not np.array_equal(model.layers[1].params["weight"], np.ones(3))
    model.save(tmp_path / "scale.npz")
    np.testing.assert_array_equal(load(tmp_path / "scale.npz").predict(x), model.predict(x))
