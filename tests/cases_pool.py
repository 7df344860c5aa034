"""Hypothesis strategies for the pooling ops: every attribute (ceil_mode, the padding forms,
stride, dilation, count_include_pad, divisor_override), adaptive output sizes, 1-D pools.
Valid cases only (errors have their own tests)."""

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from cases import DTYPES, array, distinct
from fastcnn.backends import output_size


def sides_of(padding):
    """padding (an int, an (h, w) pair or (top, bottom, left, right)) as the 4-tuple."""
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)


def sees_input(size, kernel, stride, lo, dilation, out):
    """Every window along one axis has a tap inside the input (from the definition)."""
    return all(any(0 <= o * stride - lo + m * dilation < size for m in range(kernel))
               for o in range(out))


@st.composite
def window(draw, dilation=True, max_side=7):
    """(kernel_size, stride, padding, dilation, ceil_mode, (H, W)) that PyTorch accepts:
    padding at most half the kernel, as an int, an (h, w) pair or (top, bottom, left,
    right), and every window seeing some of the input."""
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    form = draw(st.sampled_from(["int", "pair", "sides"]))
    if form == "int":
        padding = draw(st.integers(0, min(k) // 2))
    elif form == "pair":
        padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    else:
        padding = tuple(draw(st.integers(0, k[a // 2] // 2)) for a in range(4))
    ceil_mode = draw(st.booleans())
    sides = sides_of(padding)
    hw = []
    for a in range(2):
        extent = d[a] * (k[a] - 1) + 1
        pads = sides[2 * a] + sides[2 * a + 1]
        # ceil_mode admits a window larger than the padded input (PyTorch's rule)
        low = max(1, extent - pads - (s[a] - 1 if ceil_mode else 0))
        size = draw(st.integers(low, low + max_side))
        out = output_size(size, k[a], s[a], sides[2 * a: 2 * a + 2], d[a], ceil_mode)
        assume(out >= 1 and sees_input(size, k[a], s[a], sides[2 * a], d[a], out))
        hw.append(size)
    return k, s, padding, d, ceil_mode, tuple(hw)


def values(draw, shape, dtype, distinct_values):
    if distinct_values:   # no ties, far apart: finite differences cannot swap a maximum
        return distinct(draw, shape, dtype)
    # few distinct values, so ties are common and must break the same way everywhere
    return (array(draw, shape, dtype) * 2).round().astype(dtype)


@st.composite
def max_pool_case(draw, distinct_values=False, dtype=None):
    dtype = dtype or draw(DTYPES)
    k, s, p, d, ceil_mode, hw = draw(window())
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + hw
    return dict(x=values(draw, shape, dtype, distinct_values), kernel_size=k, stride=s,
                padding=p, dilation=d, ceil_mode=ceil_mode)


@st.composite
def avg_pool_case(draw, dtype=None):
    dtype = dtype or draw(DTYPES)
    k, s, p, _, ceil_mode, hw = draw(window(dilation=False))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + hw
    divisor = draw(st.one_of(st.none(), st.integers(1, 5)))
    return dict(x=array(draw, shape, dtype), kernel_size=k, stride=s, padding=p,
                ceil_mode=ceil_mode, count_include_pad=draw(st.booleans()),
                divisor_override=divisor)


@st.composite
def adaptive_case(draw, distinct_values=False, dtype=None):
    """x and an output_size: an int or a pair, None entries keeping the input's size,
    smaller or larger than the input (windows then overlap or repeat pixels)."""
    dtype = dtype or draw(DTYPES)
    hw = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + hw
    entry = st.integers(1, 10)
    size = draw(st.one_of(entry, st.tuples(st.one_of(st.none(), entry),
                                           st.one_of(st.none(), entry))))
    return dict(x=values(draw, shape, dtype, distinct_values), output_size=size)


def line_window(draw, dilation):
    """A 1-D pool's kernel_size, stride, padding (an int or (left, right)), dilation and
    ceil_mode, with the length L that fits."""
    k, s = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    d = draw(st.integers(1, 2)) if dilation else 1
    lo, hi = draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2))
    if draw(st.booleans()):
        padding, hi = lo, lo
    else:
        padding = (lo, hi)
    ceil_mode = draw(st.booleans())
    low = max(1, d * (k - 1) + 1 - lo - hi - (s - 1 if ceil_mode else 0))
    length = draw(st.integers(low, low + 9))
    out = output_size(length, k, s, (lo, hi), d, ceil_mode)
    assume(out >= 1 and sees_input(length, k, s, lo, d, out))
    return k, s, padding, d, ceil_mode, length


@st.composite
def pool1d_case(draw, kind):
    """Arguments of max_pool1d / avg_pool1d / adaptive_*_pool1d (kind "max", "avg",
    "adaptive_max" or "adaptive_avg") on an (N, C, L) array."""
    dtype = draw(DTYPES)
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    if kind.startswith("adaptive"):
        length = draw(st.integers(1, 12))
        return dict(x=values(draw, (n, c, length), dtype, False),
                    output_size=draw(st.integers(1, 12)))
    k, s, p, d, ceil_mode, length = line_window(draw, dilation=kind == "max")
    case = dict(x=values(draw, (n, c, length), dtype, False), kernel_size=k, stride=s,
                padding=p, ceil_mode=ceil_mode)
    if kind == "max":
        case["dilation"] = d
    else:
        case["count_include_pad"] = draw(st.booleans())
    return case


def upstream(draw, y, dtype):
    """A random upstream gradient shaped like y."""
    return array(draw, np.shape(y), dtype)
