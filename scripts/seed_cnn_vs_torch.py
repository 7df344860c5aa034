"""Training-step time of the seed MNIST CNN: fastcnn against PyTorch on the CPU, one run.

    python scripts/seed_cnn_vs_torch.py [--threads 2] [--batch-size 100] [--steps 60]
                                        [--epochs 3]

Both train the same model (Conv2d 1->32 3x3 p1, ReLU, MaxPool 2, Conv2d 32->64
3x3 p1, ReLU, MaxPool 2, Flatten, Linear 3136->10; softmax cross-entropy; Adam
lr 1e-3) on the same batches with the same number of threads. Steps alternate
between the two frameworks in rounds, so a busy machine slows both alike; the
figures are the fastest and the median step of each over the rounds (on a
shared machine the fastest is the one to trust: interference only slows).
With --epochs N, whole epochs over 8,000 images alternate the same way (both
read the same shuffled NumPy batches; fastcnn through model.fit). Then one
fastcnn step is broken down by layer (forward and backward), loss and
optimizer (fastest time of each part).
Needs PyTorch (for the comparison only).
"""

import argparse
import statistics
import time

import numpy as np
import torch

import fastcnn
from fastcnn.data import DataLoader
from fastcnn.model import Sequential
from fastcnn.nn import (Conv2d, Flatten, Linear, MaxPool2d, ReLU,  # noqa: F401
                        SoftmaxCrossEntropy)
from fastcnn.optim import Adam


def fastcnn_model():
    model = Sequential(Conv2d(1, 32, 3, padding=1), ReLU(), MaxPool2d(2),
                       Conv2d(32, 64, 3, padding=1), ReLU(), MaxPool2d(2),
                       Flatten(), Linear(3136, 10))
    return model.compile(Adam(model.parameters(), lr=1e-3), SoftmaxCrossEntropy())


def torch_model():
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(3136, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(x, y):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return step


def timed(f, *args):
    start = time.perf_counter()
    f(*args)
    return time.perf_counter() - start


class Timer:
    """Wraps the layers' and loss's methods to time every part of a step."""

    def __init__(self, model):
        self.times = {}
        for layer in model.layers:
            self._wrap(layer, "forward", f"{layer.index} {type(layer).__name__} forward")
            self._wrap(layer, "backward", f"{layer.index} {type(layer).__name__} backward")
        self._wrap(model.loss, "forward", "loss forward")
        self._wrap(model.loss, "correct", "accuracy count")
        self._wrap(model.loss, "backward", "loss backward")
        self._wrap(model.optimizer, "step", "optimizer step")

    def _wrap(self, obj, method, label):
        inner = getattr(obj, method)

        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            result = inner(*args, **kwargs)
            self.times.setdefault(label, []).append(time.perf_counter() - start)
            return result
        setattr(obj, method, wrapped)


def compare_epochs(ours, theirs, args):
    rng = np.random.default_rng(1)
    x = rng.random((8000, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 8000)
    batches = DataLoader((x, y), batch_size=args.batch_size, shuffle=True, seed=0)

    def torch_epoch():
        for xb, yb in batches:
            theirs(torch.from_numpy(xb), torch.from_numpy(yb))

    t_ours, t_theirs = [], []
    for _ in range(args.epochs):
        t_ours.append(timed(ours.fit, batches, 1, None, (), 0))
        t_theirs.append(timed(torch_epoch))
    print(f"epochs of 8,000 images, {args.epochs} rounds")
    for what, pick in (("fastest", min), ("median", statistics.median)):
        a, b = pick(t_ours), pick(t_theirs)
        print(f"  {what} epoch: fastcnn {a:.2f} s, PyTorch {b:.2f} s, ratio {a / b:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--steps", type=int, default=60, help="timed rounds (one step of each)")
    ap.add_argument("--epochs", type=int, default=0, help="timed rounds of one epoch each")
    args = ap.parse_args()
    fastcnn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, args.batch_size)
    ours, theirs = fastcnn_model(), torch_model()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(3):   # warm-up: buffers, workspaces, first-touch
        ours.train_step(x, y)
        theirs(tx, ty)
    t_ours, t_theirs = [], []
    for _ in range(args.steps):
        t_ours.append(timed(ours.train_step, x, y))
        t_theirs.append(timed(theirs, tx, ty))
    steps = -(-8000 // args.batch_size)
    print(f"threads {args.threads}, batch {args.batch_size}, {args.steps} rounds")
    for what, pick in (("fastest", min), ("median", statistics.median)):
        a, b = pick(t_ours), pick(t_theirs)
        print(f"  {what} step: fastcnn {a * 1e3:.1f} ms, PyTorch {b * 1e3:.1f} ms, "
              f"ratio {a / b:.2f} (epoch of 8,000 digits: {a * steps:.1f} s vs "
              f"{b * steps:.1f} s)")

    if args.epochs:
        compare_epochs(ours, theirs, args)

    timer = Timer(ours)
    for _ in range(args.steps):
        ours.train_step(x, y)
    parts = {k: min(v) for k, v in timer.times.items()}
    total = sum(parts.values())
    print(f"\none fastcnn step by part (fastest of {args.steps}, sum {total * 1e3:.1f} ms):")
    for k, v in parts.items():
        print(f"  {k:24s} {v * 1e3:7.2f} ms  {100 * v / total:5.1f} %")


if __name__ == "__main__":
    main()
