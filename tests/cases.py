"""Hypothesis strategies for the ops' arguments: valid cases only (errors have their own tests)."""

import numpy as np
from hypothesis import strategies as st

DTYPES = st.sampled_from([np.float32, np.float64])


def array(draw, shape, dtype, low=-2.0, high=2.0):
    """A random array of that shape; the seed comes from hypothesis, so failures replay."""
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).uniform(low, high, shape).astype(dtype)


def distinct(draw, shape, dtype):
    """Values with no ties, far enough apart for finite differences not to swap them."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1).astype(dtype)


@st.composite
def window(draw, max_kernel=4, dilation=True, pool=False):
    """kernel_size, stride, padding, dilation, plus the input's H, W that fit. Padding is
    an (h, w) pair or, a third of the time, an uneven (top, bottom, left, right)."""
    k = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    # PyTorch's rule for pools: padding at most half the kernel
    most = (k[0] // 2, k[1] // 2) if pool else (2, 2)
    sides = [draw(st.integers(0, most[a // 2])) for a in range(4)]
    if draw(st.integers(0, 2)):
        sides[1], sides[3] = sides[0], sides[2]
        p = (sides[0], sides[2])
    else:
        p = tuple(sides)
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    hw = []
    for a in range(2):
        extent = d[a] * (k[a] - 1) + 1
        pads = sides[2 * a] + sides[2 * a + 1]
        hw.append(draw(st.integers(max(1, extent - pads), extent - pads + 7)))
    return k, s, p, d, tuple(hw)


@st.composite
def conv_case(draw, max_batch=3, max_channels=4):
    dtype = draw(DTYPES)
    k, s, p, d, (h, w) = draw(window())
    n, c, o = (draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels)),
               draw(st.integers(1, max_channels)))
    x = array(draw, (n, c, h, w), dtype)
    weight = array(draw, (o, c) + k, dtype)
    bias = array(draw, (o,), dtype) if draw(st.booleans()) else None
    return dict(x=x, weight=weight, bias=bias, stride=s, padding=p, dilation=d)


@st.composite
def pool_case(draw, max_batch=3, max_channels=3, distinct_values=False):
    dtype = draw(DTYPES)
    k, s, p, _, (h, w) = draw(window(dilation=False, pool=True))
    shape = (draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels)), h, w)
    if distinct_values:
        x = distinct(draw, shape, dtype)
    else:   # few distinct values, so ties are common and must break the same way
        x = (array(draw, shape, dtype) * 2).round().astype(dtype)
    return dict(x=x, kernel_size=k, stride=s, padding=p)


@st.composite
def upsample_case(draw):
    dtype = draw(DTYPES)
    shape = tuple(draw(st.integers(1, n)) for n in (3, 3, 5, 5))
    scale = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return dict(x=array(draw, shape, dtype), scale_factor=scale)


@st.composite
def matmul_case(draw):
    dtype = draw(DTYPES)
    m, k, n = (draw(st.integers(1, 40)) for _ in range(3))
    return dict(a=array(draw, (m, k), dtype), b=array(draw, (k, n), dtype))


@st.composite
def linear_case(draw):
    dtype = draw(DTYPES)
    n, fin, fout = (draw(st.integers(1, 20)) for _ in range(3))
    return dict(x=array(draw, (n, fin), dtype), weight=array(draw, (fout, fin), dtype),
                bias=array(draw, (fout,), dtype) if draw(st.booleans()) else None)
