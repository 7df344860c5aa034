"""One GEMM kernel for every product: matmul, linear and its backward, and the
three products of a convolution.

C[z] = A[z] B[z] (+ bias) (+ C[z]) for a batch of z, where A (m x k) and B (k x n)
are read through strides, so a transposed operand is just other strides and
nothing is ever transposed in memory. A batch can also be *reduced*: a block
sums A[z] B[z] over a run of z (the weight gradient of a convolution sums over
images).

The kernel is the classic tiled, register-blocked SGEMM. A block of TM x TN
threads computes a BM x BN tile of C (BM = TM*RM, BN = TN*RN). It walks k in
steps of BK: the block stages a BM x BK slice of A and a BK x BN slice of B in
shared memory, and each thread multiplies them into its RM x RN accumulators,
held in registers. Per step of k a thread loads RM + RN values from shared
memory and does RM * RN fused multiply-adds, so larger RM, RN mean less memory
traffic per flop. Thread (tx, ty) owns rows ty + TM*r and columns tx + TN*s:
neighbouring threads read neighbouring shared-memory words (no bank conflicts)
and write neighbouring words of C (coalesced). While a tile is being multiplied,
the next one is already loading into registers (software pipelining), so the
global-memory latency hides behind the arithmetic.
"""

from math import ceil

from numba import cuda

from ._arrays import flat, scratch
from ._jit import SIMULATOR, boolean, i64, kernel, target_blocks
from .reduce import sum_splits

BK = 8
# Threads per block along each axis: 16 x 16 on a GPU; 4 x 4 on the simulator (each
# thread is a Python thread there), with the same register blocking and BK.
TM = TN = 4 if SIMULATOR else 16
RS = (1, 2, 4, 8)   # register blocking per axis; the tile is 16 to 128 wide on a GPU
CONFIGS = tuple((TM, TN, rm, rn, BK) for rm in RS for rn in RS)
PAD = 4   # shared-memory row padding: staging a k-contiguous operand stays conflict-free

NO_BIAS, BIAS_PER_ROW, BIAS_PER_COLUMN = 0, 1, 2


def _gemm_signature(f):
    return (f[::1], f[::1], f[::1], f[::1], i64, i64, i64, i64, i64,
            i64, i64, i64, i64, i64, i64, i64, i64, boolean)


def _two_blocks_per_sm(dtype, TM, TN, RM, RN, BK):
    """float32: at most 128 registers a thread, so that two blocks share a multiprocessor
    (the 8x8 tile needs 132 otherwise, and then runs one block of 8 warps per SM; with
    the bound ptxas fits it in 118 without spilling). float64's accumulators alone
    would need 128 registers: no bound."""
    return (TM * TN, 2) if dtype.itemsize == 4 else None


@kernel(_gemm_signature, variants=CONFIGS, launch_bounds=_two_blocks_per_sm)
def gemm_kernel(F, TM, TN, RM, RN, BK):
    BM, BN, THREADS = TM * RM, TN * RN, TM * TN
    A_LOADS, B_LOADS = ceil(BM * BK / THREADS), ceil(BN * BK / THREADS)
    A_SHAPE, B_SHAPE = (BK, BM + PAD), (BK, BN + PAD)   # constants, as shared arrays need

    @cuda.jit(device=True, inline="always")
    def slot(e, stride_k, SIZE):
        """(kk, oo) of the e-th element of a SIZE x BK slice. Consecutive threads take
        consecutive addresses: along k if k is the unit stride, else along o."""
        if stride_k == 1:
            return e % BK, e // BK
        return e // SIZE, e % SIZE

    @cuda.jit(device=True, inline="always")
    def fetch(src, base, stride_o, stride_k, o0, k0, o_size, k_size, tid, regs, SIZE, LOADS):
        """This thread's share of a SIZE x BK slice of an operand, into registers."""
        for q in range(LOADS):
            e = tid + q * THREADS
            kk, oo = slot(e, stride_k, SIZE)
            o, kg = o0 + oo, k0 + kk
            value = F(0)
            if e < SIZE * BK and o < o_size and kg < k_size:
                value = src[base + o * stride_o + kg * stride_k]
            regs[q] = value

    @cuda.jit(device=True, inline="always")
    def stage(tile, tid, stride_k, regs, SIZE, LOADS):
        """The fetched values into the shared tile, stored k-major: tile[kk, oo]."""
        for q in range(LOADS):
            e = tid + q * THREADS
            kk, oo = slot(e, stride_k, SIZE)
            if e < SIZE * BK:
                tile[kk, oo] = regs[q]

    def gemm(a, b, c, bias, m, n, k, batches, per_split, a_z, a_m, a_k, b_z, b_k, b_n, c_z,
             bias_mode, accumulate):
        a_tile = cuda.shared.array(A_SHAPE, F)
        b_tile = cuda.shared.array(B_SHAPE, F)
        acc = cuda.local.array((RM, RN), F)
        a_next = cuda.local.array(A_LOADS, F)
        b_next = cuda.local.array(B_LOADS, F)
        a_col = cuda.local.array(RM, F)
        b_row = cuda.local.array(RN, F)
        # "& 1023" changes nothing (thread indices are below 1024) but tells the compiler
        # that indices built from them are not negative: Numba then leaves out its
        # negative-index wraparound, a compare and select per shared-memory read (the
        # inner loop shrinks to its loads and FMAs, from 162 to 132 registers).
        tx, ty = cuda.threadIdx.x & 1023, cuda.threadIdx.y & 1023
        tid = ty * TN + tx
        row0, col0 = cuda.blockIdx.y * BM, cuda.blockIdx.x * BN
        for r in range(RM):
            for s in range(RN):
                acc[r, s] = F(0)

        # This block's (z, k0) steps: z over its run of the batch, k0 over k.
        z = cuda.blockIdx.z * per_split
        z_end = min(z + per_split, batches)
        steps = max(z_end - z, 0) * ((k + BK - 1) // BK)
        k0 = 0
        if steps > 0:
            fetch(a, z * a_z, a_m, a_k, row0, k0, m, k, tid, a_next, BM, A_LOADS)
            fetch(b, z * b_z, b_n, b_k, col0, k0, n, k, tid, b_next, BN, B_LOADS)
        for step in range(steps):
            stage(a_tile, tid, a_k, a_next, BM, A_LOADS)
            stage(b_tile, tid, b_k, b_next, BN, B_LOADS)
            cuda.syncthreads()
            k0 += BK
            if k0 >= k:
                k0 = 0
                z += 1
            if step + 1 < steps:   # the next slices load while this one is multiplied
                fetch(a, z * a_z, a_m, a_k, row0, k0, m, k, tid, a_next, BM, A_LOADS)
                fetch(b, z * b_z, b_n, b_k, col0, k0, n, k, tid, b_next, BN, B_LOADS)
            for kk in range(BK):
                for r in range(RM):
                    a_col[r] = a_tile[kk, ty + TM * r]
                for s in range(RN):
                    b_row[s] = b_tile[kk, tx + TN * s]
                for r in range(RM):
                    for s in range(RN):
                        acc[r, s] += a_col[r] * b_row[s]
            cuda.syncthreads()

        base = cuda.blockIdx.z * c_z
        for r in range(RM):
            for s in range(RN):
                i, j = row0 + ty + TM * r, col0 + tx + TN * s
                if i < m and j < n:
                    value = acc[r, s]
                    if bias_mode == BIAS_PER_ROW:
                        value += bias[i]
                    elif bias_mode == BIAS_PER_COLUMN:
                        value += bias[j]
                    if accumulate:
                        value += c[base + i * n + j]
                    c[base + i * n + j] = value
    return gemm


def _fit(size):
    """The smallest register blocking whose tile covers size (the largest if none does)."""
    return next((r for r in RS if TM * r >= size), RS[-1])


def _tiles(m, n, r_m, r_n):
    return ceil(m / (TM * r_m)) * ceil(n / (TN * r_n))


def _config(m, n, batch):
    """Register blocking for an m x n product: tiles no larger than the matrix, then
    smaller tiles while there are too few blocks to fill the GPU."""
    r_m, r_n = _fit(m), _fit(n)
    while _tiles(m, n, r_m, r_n) * batch < target_blocks() and max(r_m, r_n) > 2:
        if r_m >= r_n:
            r_m //= 2
        else:
            r_n //= 2
    return (TM, TN, r_m, r_n, BK)


class Operand:
    """A matrix (or a batch of them) read through strides: element (z, row, col) is
    array[z * z_stride + row * row_stride + col * col_stride]."""

    def __init__(self, array, z_stride, row_stride, col_stride):
        self.array = flat(array)
        self.strides = (z_stride, row_stride, col_stride)


def _launch(c, a, b, m, n, k, batches, per_block, c_z, bias, bias_per, accumulate):
    grid_z = ceil(batches / per_block)
    config = _config(m, n, grid_z)
    r_m, r_n = config[2:4]
    grid = (ceil(n / (TN * r_n)), ceil(m / (TM * r_m)), grid_z)
    c = flat(c)
    gemm_kernel(c.dtype, *config)[grid, (TN, TM)](
        a.array, b.array, c, c if bias is None else flat(bias), m, n, k, batches, per_block,
        *a.strides, *b.strides, c_z, NO_BIAS if bias is None else bias_per, accumulate)


def gemm(c, a, b, m, n, k, batches=1, c_z=0, bias=None, bias_per=NO_BIAS, accumulate=False):
    """c[z] (+)= a[z] b[z] (+ bias) for z < batches; c row-major, batch stride c_z.
    (The bias array is passed in its place when there is none: never read.)"""
    _launch(c, a, b, m, n, k, batches, 1, c_z, bias, bias_per, accumulate)


def gemm_sum(c, a, b, m, n, k, batches, accumulate=False):
    """c (+)= sum over z < batches of a[z] b[z].

    Few m x n tiles would leave the GPU idle, so the batch is split into runs, each
    summed by its own blocks into a partial product; the partials are then added
    in a fixed order: deterministic, no atomics."""
    if m * n == 0:   # c is empty (a conv's dweight without input channels): nothing to do
        return
    tiles = _tiles(m, n, *_config(m, n, 1)[2:4])
    per_block = ceil(batches / max(1, min(batches, target_blocks() // tiles)))
    splits = ceil(batches / per_block)
    if splits == 1:
        _launch(c, a, b, m, n, k, batches, batches, 0, None, NO_BIAS, accumulate)
        return
    partials = scratch("gemm_partials", (splits, m * n), c.dtype)
    _launch(partials, a, b, m, n, k, batches, per_block, m * n, None, NO_BIAS, False)
    sum_splits(partials, flat(c), accumulate)
