"""Winograd against im2col + gemm on the cpu backend, layer shape by layer shape: the
measurements behind fastcnn.backends.cpu.winograd.pays (issue 16).

For each shape, the forward and the input gradient (dx) by both paths, interleaved, the
best of ROUNDS; then which path pays() picks. Run from outside the checkout's root:

    python tools/winograd_rule.py [ROUNDS] [THREADS]
"""

import sys
import time
from unittest import mock

import numpy as np

import fastcnn
from fastcnn.backends import get
from fastcnn.backends.cpu import winograd

# (images, in channels, side, out channels): the seed CNN's conv2 (B), CIFAR's and
# ResNet's stages, thin and wide ones
SHAPES = [(100, 32, 14, 64), (32, 64, 32, 128), (16, 128, 16, 256), (16, 256, 7, 256),
          (8, 64, 56, 64), (32, 16, 32, 16), (32, 32, 32, 32), (100, 64, 7, 64),
          (16, 128, 28, 128), (64, 16, 28, 128), (16, 64, 28, 64), (8, 32, 56, 32),
          (8, 128, 56, 64), (4, 64, 112, 64), (8, 64, 56, 128)]


def best(call, rounds):
    call()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main(rounds, threads):
    fastcnn.set_num_threads(threads)
    cpu, rng = get("cpu"), np.random.default_rng(0)
    right = total = 0
    for n, c, side, k in SHAPES:
        x = rng.standard_normal((n, c, side, side), dtype=np.float32)
        w = rng.standard_normal((k, c, 3, 3), dtype=np.float32)
        y = np.empty((n, k, side, side), np.float32)
        dy, dx = rng.standard_normal(y.shape, dtype=np.float32), np.empty_like(x)
        calls = {"forward": (lambda: cpu.conv2d(x, w, None, (1, 1), (1,) * 4, (1, 1), 1, out=y),
                             x.shape, y.shape),
                 "dx": (lambda: cpu.conv2d_backward(dy, x, w, (1, 1), (1,) * 4, (1, 1), 1, True,
                                                    out=(dx, None, None)), y.shape, x.shape)}
        for part, (call, src, dst) in calls.items():
            seconds = {}
            for path, pays in (("winograd", True), ("direct", False)):
                with mock.patch.object(winograd, "pays", lambda *shapes: pays):
                    seconds[path] = best(call, rounds)
            picked = "winograd" if winograd.pays(src, dst) else "direct"
            faster = min(seconds, key=seconds.get)
            right, total = right + (picked == faster), total + 1
            print(f"{n:4d}x{src[1]:3d}x{side:3d}x{side:<3d} -> {dst[1]:3d} {part:7s} winograd "
                  f"{seconds['winograd'] * 1e3:7.2f} ms  direct {seconds['direct'] * 1e3:7.2f} ms"
                  f"  pays() picks {picked:8s} ({'faster' if picked == faster else 'SLOWER'})")
    print(f"pays() picks the faster path in {right} of {total}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8,
         int(sys.argv[2]) if len(sys.argv) > 2 else fastcnn.get_num_threads())
