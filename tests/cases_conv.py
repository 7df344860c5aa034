"""Hypothesis strategies for the conv family's new arguments: grouped and depthwise
conv2d, conv_transpose2d, conv1d. Valid cases only (errors have their own tests)."""

from hypothesis import strategies as st

from cases import DTYPES, array


@st.composite
def window(draw):
    """kernel_size, stride, padding, dilation and an input H, W that fit, smaller than
    cases.window's (the CUDA simulator runs these): padding an (h, w) pair or, half the
    time, (top, bottom, left, right)."""
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    sides = [draw(st.integers(0, 2)) for _ in range(4)]
    if draw(st.booleans()):
        sides[1], sides[3] = sides[0], sides[2]
        p = (sides[0], sides[2])
    else:
        p = tuple(sides)
    hw = []
    for a in range(2):
        extent = d[a] * (k[a] - 1) + 1
        pads = sides[2 * a] + sides[2 * a + 1]
        hw.append(draw(st.integers(max(1, extent - pads), max(1, extent - pads) + 4)))
    return k, s, p, d, tuple(hw)


@st.composite
def grouped_case(draw, max_batch=2):
    """A conv2d with 1 to 3 groups of 1 to 3 input and output channels each."""
    dtype = draw(DTYPES)
    k, s, p, d, (h, w) = draw(window())
    groups, per_in, per_out = (draw(st.integers(1, 3)) for _ in range(3))
    n = draw(st.integers(1, max_batch))
    x = array(draw, (n, groups * per_in, h, w), dtype)
    weight = array(draw, (groups * per_out, per_in) + k, dtype)
    bias = array(draw, (groups * per_out,), dtype) if draw(st.booleans()) else None
    return dict(x=x, weight=weight, bias=bias, stride=s, padding=p, dilation=d, groups=groups)


@st.composite
def depthwise_case(draw, multiplier, max_batch=2):
    """A depthwise conv2d (groups == in_channels > 1) with multiplier output channels per
    input channel."""
    dtype = draw(DTYPES)
    k, s, p, d, (h, w) = draw(window())
    c, n = draw(st.integers(2, 4)), draw(st.integers(1, max_batch))
    x = array(draw, (n, c, h, w), dtype)
    weight = array(draw, (c * multiplier, 1) + k, dtype)
    bias = array(draw, (c * multiplier,), dtype) if draw(st.booleans()) else None
    return dict(x=x, weight=weight, bias=bias, stride=s, padding=p, dilation=d, groups=c)


@st.composite
def transposed_case(draw, max_batch=2, depthwise=False):
    """A conv_transpose2d: stride, padding (a pair or (top, bottom, left, right)),
    output_padding below stride or dilation, dilation, groups; the output at least 1x1.
    depthwise: groups == in_channels and one output channel each."""
    dtype = draw(DTYPES)
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    op = tuple(draw(st.integers(0, max(s[a], d[a]) - 1)) for a in range(2))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    # each side's padding at most what keeps the output >= 1
    full = [(size - 1) * s[a] + d[a] * (k[a] - 1) + op[a] for a, size in enumerate((h, w))]
    sides = [draw(st.integers(0, min(2, full[a // 2] // 2))) for a in range(4)]
    p = tuple(sides) if draw(st.booleans()) else (sides[0], sides[2])
    if depthwise:
        groups, per_in, per_out = draw(st.integers(2, 4)), 1, 1
    else:
        groups, per_in, per_out = (draw(st.integers(1, 3)) for _ in range(3))
    n = draw(st.integers(1, max_batch))
    x = array(draw, (n, groups * per_in, h, w), dtype)
    weight = array(draw, (groups * per_in, per_out) + k, dtype)
    bias = array(draw, (groups * per_out,), dtype) if draw(st.booleans()) else None
    return dict(x=x, weight=weight, bias=bias, stride=s, padding=p, output_padding=op,
                groups=groups, dilation=d)


@st.composite
def conv1d_case(draw, max_batch=2):
    """A conv1d: groups, stride, padding (an int or (left, right)), dilation."""
    dtype = draw(DTYPES)
    k, s, d = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    sides = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    p = sides if draw(st.booleans()) else sides[0]
    pads = sides if isinstance(p, tuple) else (p, p)
    extent = d * (k - 1) + 1
    length = draw(st.integers(max(1, extent - sum(pads)), max(1, extent - sum(pads)) + 6))
    groups, per_in, per_out = (draw(st.integers(1, 3)) for _ in range(3))
    n = draw(st.integers(1, max_batch))
    x = array(draw, (n, groups * per_in, length), dtype)
    weight = array(draw, (groups * per_out, per_in, k), dtype)
    bias = array(draw, (groups * per_out,), dtype) if draw(st.booleans()) else None
    return dict(x=x, weight=weight, bias=bias, stride=s, padding=p, dilation=d, groups=groups)
