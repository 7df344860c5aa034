"""The seed MNIST CNN of the training cases, in fastcnn and in PyTorch, from the same weights.

The seed CNN (issue 4): Conv2d(1->32, 3, padding 1), ReLU, MaxPool2d(2),
Conv2d(32->64, 3, padding 1), ReLU, MaxPool2d(2), Flatten, Linear(3136->10);
softmax cross-entropy, Adam lr 1e-3, batch 100. The model is built from its
weights' shapes, so the tests' tiny twin is the same code on smaller arrays.

Every implementation starts from the same weights (PyTorch's default
initialisation, drawn from the run's seed) and, for an epoch, sees the same
shuffled NumPy batches, so each one's result can be checked against the same
float64 oracle before it is timed.
"""

import functools
import os
import time
from pathlib import Path

import numpy as np

# The parameters in the order both frameworks list them (model.parameters()).
WEIGHTS = ("conv1_weight", "conv1_bias", "conv2_weight", "conv2_bias",
           "linear_weight", "linear_bias")


def shapes(images, side=28, channels=(32, 64), classes=10, kernel=3):
    """The arrays of a training case: the images, their labels and the starting weights."""
    c1, c2 = channels
    return {"x": (images, 1, side, side), "y": (images,),
            "conv1_weight": (c1, 1, kernel, kernel), "conv1_bias": (c1,),
            "conv2_weight": (c2, c1, kernel, kernel), "conv2_bias": (c2,),
            "linear_weight": (classes, c2 * (side // 4) ** 2), "linear_bias": (classes,)}


def initial_weights(rng, weight_shapes):
    """PyTorch's default initialisation of Conv2d and Linear: weight and bias uniform in
    +-1/sqrt(fan_in), fan_in being the inputs of one output of the layer's weight."""
    weights = {}
    for name in WEIGHTS:
        fan_in = np.prod(weight_shapes[name.rsplit("_", 1)[0] + "_weight"][1:])
        bound = 1 / np.sqrt(fan_in)
        weights[name] = rng.uniform(-bound, bound, weight_shapes[name]).astype(np.float32)
    return weights


# ---------------------------------------------------------------- the digits


def find_mnist():
    """The folder of the real MNIST digits: FASTCNN_MNIST_DIR, else shared/data/mnist beside
    the working directory (the repository's root: ../shared/data/mnist) or beside the
    checkout fastcnn runs from, or a folder above either. None when not found."""
    import fastcnn
    from fastcnn.data import mnist_files

    named = os.environ.get("FASTCNN_MNIST_DIR")
    if named:
        candidates = [Path(named)]
    else:
        candidates = [folder.parent / "shared" / "data" / "mnist"
                      for start in (Path.cwd(), Path(fastcnn.__file__).resolve().parent)
                      for folder in [start, *start.parents]]
    for candidate in candidates:
        try:
            mnist_files(candidate)
            return candidate
        except FileNotFoundError:
            pass
    return None


@functools.lru_cache(maxsize=1)
def _mnist(folder):
    from fastcnn.data import MNIST_MEAN, MNIST_STD, load_mnist, normalize
    x, y = load_mnist(folder)
    return normalize(x, MNIST_MEAN, MNIST_STD), y


def digits(folder, n):
    """The first n digits of the fixed training split (the first 8,000 of the test set's
    10,000), normalised as the examples train on them."""
    x, y = _mnist(os.fspath(folder))
    if n > 8000:
        raise ValueError(f"the training split has 8,000 digits, not {n:,}")
    return x[:n], y[:n]


def random_digits(rng, n, side):
    """Random images (standard normal, as normalised digits roughly are) and labels."""
    return (rng.standard_normal((n, 1, side, side), dtype=np.float32),
            rng.integers(0, 10, n))


def inputs(case, rng, mnist=None):
    """A training case's arguments: the first digits in mnist (a folder), or random images
    of the same shape when it is None; the starting weights."""
    n, _, side, _ = case.arrays["x"]
    x, y = digits(mnist, n) if mnist is not None else random_digits(rng, n, side)
    return {"x": x, "y": y, **initial_weights(rng, case.arrays)}


def shuffled(x, y, batch_size, seed):
    """The epochs' batches: a new order every pass, the same sequence of orders for every
    implementation (same seed), as NumPy arrays on the host."""
    from fastcnn.data import DataLoader
    return DataLoader((x, y), batch_size=batch_size, shuffle=True, seed=seed)


# ---------------------------------------------------------------- the model, twice


def fastcnn_model(weights, lr, device="cpu"):
    """The seed CNN as a fastcnn Sequential starting from weights, compiled with Adam and
    softmax cross-entropy, on device."""
    from fastcnn.model import Sequential
    from fastcnn.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, SoftmaxCrossEntropy
    from fastcnn.optim import Adam

    w1, w2, w3 = (weights[k] for k in ("conv1_weight", "conv2_weight", "linear_weight"))
    k, dtype = w1.shape[-1], w1.dtype
    model = Sequential(Conv2d(w1.shape[1], w1.shape[0], k, padding=k // 2, dtype=dtype), ReLU(),
                       MaxPool2d(2),
                       Conv2d(w2.shape[1], w2.shape[0], k, padding=k // 2, dtype=dtype), ReLU(),
                       MaxPool2d(2), Flatten(), Linear(w3.shape[1], w3.shape[0], dtype=dtype))
    for p, name in zip(model.parameters(), WEIGHTS):
        p.data[...] = weights[name]
    model.compile(Adam(model.parameters(), lr=lr), SoftmaxCrossEntropy())
    return model.to(device) if device != "cpu" else model


def torch_model(weights, lr, device):
    """(model, optimizer): the same CNN in PyTorch, starting from the same weights."""
    import torch
    nn = torch.nn
    w1, w2, w3 = (weights[k] for k in ("conv1_weight", "conv2_weight", "linear_weight"))
    k = w1.shape[-1]
    model = nn.Sequential(nn.Conv2d(w1.shape[1], w1.shape[0], k, padding=k // 2), nn.ReLU(),
                          nn.MaxPool2d(2),
                          nn.Conv2d(w2.shape[1], w2.shape[0], k, padding=k // 2), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(w3.shape[1], w3.shape[0]))
    model.to(device=device, dtype=torch.from_numpy(w1).dtype)
    with torch.no_grad():
        for p, name in zip(model.parameters(), WEIGHTS):
            p.copy_(torch.from_numpy(weights[name]))
    return model, torch.optim.Adam(model.parameters(), lr=lr)


def torch_step(model, optimizer, x, y):
    """One step as PyTorch users write it -> (loss, logits), both still on the device."""
    import torch
    optimizer.zero_grad(set_to_none=True)
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    optimizer.step()
    return loss, logits


def torch_epoch(model, optimizer, batches, device):
    """One pass over batches (NumPy (x, y) pairs, uploaded one by one) -> the mean loss.
    It counts the right predictions too, as fastcnn's fit does (on the device)."""
    import torch
    total, seen, correct = 0.0, 0, torch.zeros((), dtype=torch.int64, device=device)
    for xb, yb in batches:
        x, y = torch.from_numpy(xb).to(device), torch.from_numpy(yb).to(device)
        loss, logits = torch_step(model, optimizer, x, y)
        total += loss.item() * len(xb)
        seen += len(xb)
        correct += (logits.argmax(1) == y).sum()
    correct.item()
    return total / seen


# ---------------------------------------------------------------- a step, part by part


class PartTimer:
    """Wraps the layers', loss's and optimizer's methods to time every part of a step."""

    def __init__(self, model):
        self.times = {}
        for layer in model.layers:
            for method in ("forward", "backward"):
                self._wrap(layer, method, f"{layer.index} {type(layer).__name__} {method}")
        for method, label in (("forward", "loss forward"), ("correct", "accuracy count"),
                              ("backward", "loss backward")):
            self._wrap(model.loss, method, label)
        self._wrap(model.optimizer, "step", "optimizer step")

    def _wrap(self, obj, method, label):
        inner = getattr(obj, method)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = inner(*args, **kwargs)
            self.times.setdefault(label, []).append(time.perf_counter() - start)
            return result
        setattr(obj, method, timed)


def profile_step(steps=30, mnist=None, seed=0, batch=100):
    """Each part of a fastcnn cpu training step of the seed CNN: {part: fastest seconds}
    over steps steps on one batch, after a warm-up (the fastest, as interference from
    other processes only ever slows a part)."""
    rng = np.random.default_rng(seed)
    arrays = shapes(batch)
    x, y = digits(mnist, batch) if mnist is not None else random_digits(rng, batch, 28)
    model = fastcnn_model(initial_weights(rng, arrays), lr=1e-3)
    for _ in range(3):   # buffers, workspaces, first touch
        model.train_step(x, y)
    timer = PartTimer(model)
    for _ in range(steps):
        model.train_step(x, y)
    return {part: min(times) for part, times in timer.times.items()}
