"""Time the cuda backend against cuBLAS and cuDNN (through PyTorch) on a real GPU.

    python -m fastcnn.backends.cuda.bench [--quick] [--pool] [--data DIR]

The speed targets of issue 5, each checked against PyTorch on the same GPU and
the same arrays (PyTorch's CUDA tensors go to fastcnn without a copy):

- float32 matmul 4096^3: at least 50 % of cuBLAS. Also every large GEMM tile
  shape, to choose from measurements rather than guesses.
- conv2d forward + backward, 64x64x32x32 by 128x64x3x3, padding 1: at most
  2x cuDNN's time.
- an epoch of the seed MNIST CNN (conv 1->8, pool, conv 8->16, pool, linear
  784->10; batch 64, SGD with momentum; 8,000 digits): at most 1.5x PyTorch.

Run it with and without --pool: Numba's own allocator frees memory with
cuMemFree, which waits for the GPU; the pool does not (see memory.py).

TF32 is switched off in PyTorch: both sides do IEEE float32 arithmetic. GPU
times come from CUDA events around many calls, after a warm-up (the first call
of each kernel compiles it); the epoch is wall-clock time with a final
synchronisation, as a user would see it.
"""

import argparse
import gzip
import os
import time

import numpy as np
from numba import config, cuda

import fastcnn.functional as F

from . import gemm
from ._arrays import asarray, to_device
from .memory import use_memory_pool


def gpu_seconds(fn, repeat, warmup=2):
    """Mean GPU time of fn() over repeat calls (CUDA events on the default stream)."""
    for _ in range(warmup):
        fn()
    cuda.synchronize()
    start, stop = cuda.event(), cuda.event()
    start.record()
    for _ in range(repeat):
        fn()
    stop.record()
    stop.synchronize()
    return cuda.event_elapsed_time(start, stop) / 1e3 / repeat


def _torch():
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch


def _ratio(mine, theirs):
    return "" if theirs is None else f"{theirs / mine:.2f}x of torch's speed"


def bench_matmul(torch, repeat):
    n = 4096
    flops = 2 * n ** 3
    rng = np.random.default_rng(0)
    a_host, b_host = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    if torch is not None:
        a, b = torch.from_numpy(a_host).cuda(), torch.from_numpy(b_host).cuda()
    else:
        a, b = to_device(a_host), to_device(b_host)
    c = F.matmul(a, b)
    if torch is not None:
        want = (a.double() @ b.double()).cpu().numpy()
        err = np.abs(c.copy_to_host() - want).max() / np.abs(want).max()
        print(f"  max error vs float64: {err:.1e} of the largest entry")
    mine = gpu_seconds(lambda: F.matmul(a, b, out=c), repeat)
    theirs = gpu_seconds(lambda: torch.matmul(a, b), repeat) if torch is not None else None
    print(f"matmul {n}^3 float32: fastcnn {mine * 1e3:.2f} ms ({flops / mine / 1e12:.1f} "
          f"TFLOP/s)" + (f", cuBLAS {theirs * 1e3:.2f} ms ({flops / theirs / 1e12:.1f} TFLOP/s)"
                         f" -> {theirs / mine:.0%} of cuBLAS (target >= 50%)" if theirs else ""))
    # Every large tile shape, launched directly, for tuning gemm._config; and the 8x8
    # tile compiled without its launch bounds (132 registers: one block per SM).
    a_op, b_op = gemm.Operand(asarray(a), 0, n, 1), gemm.Operand(asarray(b), 0, n, 1)
    unbounded = cuda.jit(gemm._gemm.source(np.float32, gemm.TM, gemm.TN, 8, 8, gemm.BK))
    variants = [(f"{r_m}x{r_n} per thread", r_m, r_n,
                 gemm._gemm(np.float32, gemm.TM, gemm.TN, r_m, r_n, gemm.BK))
                for r_m, r_n in [(4, 4), (4, 8), (8, 4), (8, 8)]]
    variants.append(("8x8 per thread, no launch bounds", 8, 8, unbounded))
    for label, r_m, r_n, kernel in variants:
        tile = (gemm.TM * r_m, gemm.TN * r_n)
        grid = (n // tile[1], n // tile[0], 1)

        def run():
            kernel[grid, (gemm.TN, gemm.TM)](a_op.array, b_op.array, c.reshape(c.size),
                                             c.reshape(c.size), n, n, n, 1, 1,
                                             *a_op.strides, *b_op.strides, 0, 0, False)
        t = gpu_seconds(run, repeat)
        print(f"  tile {tile[0]}x{tile[1]} ({label}): {t * 1e3:.2f} ms, "
              f"{flops / t / 1e12:.1f} TFLOP/s")


def bench_conv(torch, repeat):
    rng = np.random.default_rng(1)
    x_host = rng.standard_normal((64, 64, 32, 32), dtype=np.float32)
    w_host = rng.standard_normal((128, 64, 3, 3), dtype=np.float32) * 0.05
    b_host = rng.standard_normal(128, dtype=np.float32)
    dy_host = rng.standard_normal((64, 128, 32, 32), dtype=np.float32)
    if torch is not None:
        x, w, b, dy = (torch.from_numpy(v).cuda() for v in (x_host, w_host, b_host, dy_host))
    else:
        x, w, b, dy = (to_device(v) for v in (x_host, w_host, b_host, dy_host))
    y = F.conv2d(x, w, b, padding=1)
    grads = F.conv2d_backward(dy, x, w, padding=1)

    def step():
        F.conv2d(x, w, b, padding=1, out=y)
        F.conv2d_backward(dy, x, w, padding=1, out=grads)

    forward = gpu_seconds(lambda: F.conv2d(x, w, b, padding=1, out=y), repeat)
    mine = gpu_seconds(step, repeat)
    theirs = None
    if torch is not None:
        xt, wt, bt = (v.clone().requires_grad_() for v in (x, w, b))
        yt = torch.nn.functional.conv2d(xt, wt, bt, padding=1)
        yt.backward(dy)
        for got, want in zip((y, *grads), (yt, xt.grad, wt.grad, bt.grad)):
            want = want.detach().cpu().numpy()
            err = np.abs(got.copy_to_host() - want).max() / np.abs(want).max()
            print(f"  max error vs cuDNN: {err:.1e} of the largest entry")

        def torch_step():
            for t in (xt, wt, bt):
                t.grad = None
            torch.nn.functional.conv2d(xt, wt, bt, padding=1).backward(dy)
        theirs = gpu_seconds(torch_step, repeat)
    print(f"conv2d fwd+bwd 64x64x32x32 * 128x64x3x3 p1: fastcnn {mine * 1e3:.2f} ms "
          f"(forward {forward * 1e3:.2f} ms)"
          + (f", cuDNN {theirs * 1e3:.2f} ms -> {mine / theirs:.2f}x cuDNN's time (target "
             f"<= 2x)" if theirs else ""))


def _mnist(data):
    """The first 8,000 MNIST test digits (the project's training split), or random digits."""
    images = os.path.join(data or "", "t10k-images-idx3-ubyte.gz")
    if data and os.path.exists(images):
        with gzip.open(images) as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
        with gzip.open(os.path.join(data, "t10k-labels-idx1-ubyte.gz")) as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8)
        return (x[:8000] / np.float32(255)).astype(np.float32), y[:8000].astype(np.int64)
    print("  (no MNIST files given: random images, so the loss says nothing)")
    rng = np.random.default_rng(2)
    return rng.random((8000, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 8000)


def _seed_cnn_params(rng):
    def init(*shape):
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(np.float32)
    return [init(8, 1, 3, 3), np.zeros(8, np.float32), init(16, 8, 3, 3),
            np.zeros(16, np.float32), init(10, 784), np.zeros(10, np.float32)]


def _fastcnn_epoch(params, velocity, images, labels, batch, lr=0.05, momentum=0.9):
    """One epoch of the seed CNN written with fastcnn.functional on device arrays."""
    w1, b1, w2, b2, w3, b3 = params
    losses = []
    for start in range(0, len(images), batch):
        x, t = to_device(images[start:start + batch]), to_device(labels[start:start + batch])
        n = x.shape[0]
        h1 = F.relu(F.conv2d(x, w1, b1, padding=1))
        p1, i1 = F.max_pool2d(h1, 2)
        h2 = F.relu(F.conv2d(p1, w2, b2, padding=1))
        p2, i2 = F.max_pool2d(h2, 2)
        flat = p2.reshape((n, 784))
        loss, probs = F.softmax_cross_entropy(F.linear(flat, w3, b3), t)
        dz = F.softmax_cross_entropy_backward(probs, t)
        dflat, dw3, db3 = F.linear_backward(dz, flat, w3)
        dh2 = F.relu_backward(F.max_pool2d_backward(dflat.reshape(p2.shape), i2, h2.shape), h2)
        dp1, dw2, db2 = F.conv2d_backward(dh2, p1, w2, padding=1)
        dh1 = F.relu_backward(F.max_pool2d_backward(dp1, i1, h1.shape), h1)
        _, dw1, db1 = F.conv2d_backward(dh1, x, w1, padding=1, need_dx=False)
        for p, g, v in zip(params, (dw1, db1, dw2, db2, dw3, db3), velocity):
            F.sgd_step(p, g, v, lr=lr, momentum=momentum)
        losses.append(loss)
    return float(np.mean(losses))


def _torch_epoch(torch, model, optimizer, images, labels, batch):
    losses = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start:start + batch]).cuda()
        t = torch.from_numpy(labels[start:start + batch]).cuda()
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), t)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses))


def bench_seed_cnn(torch, data, epochs):
    images, labels = _mnist(data)
    rng = np.random.default_rng(3)
    host_params = _seed_cnn_params(rng)
    params = [to_device(p) for p in host_params]
    velocity = [to_device(np.zeros_like(p)) for p in host_params]
    start = time.perf_counter()
    loss = _fastcnn_epoch(params, velocity, images, labels, 64)
    cuda.synchronize()
    print(f"  fastcnn first epoch (compiles the kernels): {time.perf_counter() - start:.1f} s, "
          f"mean loss {loss:.3f}")
    mine = []
    for _ in range(epochs):
        start = time.perf_counter()
        loss = _fastcnn_epoch(params, velocity, images, labels, 64)
        cuda.synchronize()
        mine.append(time.perf_counter() - start)
    print(f"  fastcnn epochs: {', '.join(f'{t:.2f} s' for t in mine)}; mean loss {loss:.3f}")
    theirs = None
    if torch is not None:
        nn = torch.nn
        model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(784, 10)).cuda()
        with torch.no_grad():
            for p, value in zip(model.parameters(), host_params):
                p.copy_(torch.from_numpy(value))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        _torch_epoch(torch, model, optimizer, images, labels, 64)
        times = []
        for _ in range(epochs):
            start = time.perf_counter()
            loss = _torch_epoch(torch, model, optimizer, images, labels, 64)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        theirs = min(times)
        print(f"  torch epochs: {', '.join(f'{t:.2f} s' for t in times)}; mean loss {loss:.3f}")
    best = min(mine)
    print(f"seed CNN epoch (8,000 digits, batch 64): fastcnn {best:.2f} s"
          + (f", PyTorch {theirs:.2f} s -> {best / theirs:.2f}x PyTorch's time (target <= 1.5x)"
             if theirs else ""))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and epochs")
    parser.add_argument("--pool", action="store_true",
                        help="allocate from CUDA's stream-ordered pool (memory.use_memory_pool)")
    parser.add_argument("--data", default="../shared/data/mnist",
                        help="directory with the MNIST IDX files (default: %(default)s)")
    args = parser.parse_args(argv)
    if config.ENABLE_CUDASIM or not cuda.is_available():
        raise SystemExit("bench needs a real GPU (and NUMBA_ENABLE_CUDASIM unset)")
    if args.pool:
        use_memory_pool()
    device = cuda.get_current_device()
    print(f"GPU: {device.name.decode() if isinstance(device.name, bytes) else device.name}, "
          f"compute capability {device.compute_capability}")
    torch = _torch()
    if torch is None:
        print("PyTorch with CUDA not found: fastcnn times only")
    repeat = 3 if args.quick else 20
    bench_matmul(torch, repeat)
    bench_conv(torch, repeat)
    bench_seed_cnn(torch, args.data, 1 if args.quick else 3)


if __name__ == "__main__":
    main()
