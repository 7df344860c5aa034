"""Time every register blocking of the GEMM kernel on a real GPU, to tune gemm._config.

    python -m fastcnn.backends.cuda.tune_gemm [--size 4096] [--repeat 20] [--pool]

A float32 n x n x n product, launched directly with each large tile shape (4x4
to 8x8 outputs per thread) and with the 8x8 tile compiled without its launch
bounds (132 registers: one block per multiprocessor), so the choice in
gemm._config rests on measurements rather than guesses.

The speed targets of issue 5 (matmul 4096^3 against cuBLAS, conv2d forward +
backward 64x64x32x32 by 128x64x3x3 against cuDNN, an epoch of the seed CNN
against PyTorch CUDA) are timed by the benchmark suite: ``fastcnn-bench --device
cuda`` (add ``FASTCNN_CUDA_MEMORY=pool`` to allocate from CUDA's memory pool).
"""

import argparse

import numpy as np
from numba import config, cuda

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


def tile_shapes(n, repeat):
    """Each large tile shape's time for an n^3 float32 product (n a multiple of 128)."""
    flops = 2 * n ** 3
    rng = np.random.default_rng(0)
    a, b = (to_device(rng.standard_normal((n, n), dtype=np.float32)) for _ in range(2))
    c = to_device(np.zeros((n, n), np.float32))
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
        print(f"tile {tile[0]}x{tile[1]} ({label}): {t * 1e3:.2f} ms, "
              f"{flops / t / 1e12:.1f} TFLOP/s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="n of the n^3 product")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per tile shape")
    parser.add_argument("--pool", action="store_true",
                        help="allocate from CUDA's stream-ordered pool (memory.use_memory_pool)")
    args = parser.parse_args(argv)
    if config.ENABLE_CUDASIM or not cuda.is_available():
        raise SystemExit("tune_gemm needs a real GPU (and NUMBA_ENABLE_CUDASIM unset)")
    if args.size % 128:
        raise SystemExit(f"--size must be a multiple of 128 (the largest tile), not {args.size}")
    if args.pool:
        use_memory_pool()
    tile_shapes(args.size, args.repeat)


if __name__ == "__main__":
    main()
