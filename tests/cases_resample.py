"""Hypothesis strategies for the resample family: upsampling, softmax over any axis,
batched matmul. Valid cases only (errors have their own tests)."""

import math

from hypothesis import assume
from hypothesis import strategies as st

from cases import DTYPES, array

# Scale factors as users write them: integers, halves, awkward decimals, downscaling.
FACTORS = st.one_of(st.sampled_from([1, 2, 3, 1.5, 2.5, 0.5, 0.75]),
                    st.floats(0.3, 3.5).map(lambda f: round(f, 2)))


@st.composite
def resize(draw, shape):
    """(scale_factor, size): one of them None, as an upsampling op takes them."""
    if draw(st.booleans()):
        factor = draw(st.one_of(FACTORS, st.tuples(FACTORS, FACTORS)))
        pair = factor if isinstance(factor, tuple) else (factor, factor)
        assume(all(math.floor(n * f) >= 1 for n, f in zip(shape[2:], pair)))
        return factor, None
    size = draw(st.one_of(st.integers(1, 9), st.tuples(st.integers(1, 9), st.integers(1, 9))))
    return None, size


@st.composite
def upsample_case(draw, max_side=6):
    dtype = draw(DTYPES)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)),
             draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    scale_factor, size = draw(resize(shape))
    return dict(x=array(draw, shape, dtype), scale_factor=scale_factor, size=size,
                align_corners=draw(st.booleans()))


@st.composite
def softmax_case(draw):
    """An array of rank 1 to 4 and an axis of it (counted from either end); now and then
    a long last axis (the cuda backend's block-per-row kernel)."""
    dtype = draw(DTYPES)
    if draw(st.integers(0, 4)) == 0:
        shape = (draw(st.integers(1, 3)), draw(st.integers(64, 90)))
        dim = draw(st.sampled_from([1, -1]))
    else:
        shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
        dim = draw(st.integers(-len(shape), len(shape) - 1))
    return (array(draw, shape, dtype, -4, 4), array(draw, shape, dtype), dim)


@st.composite
def matmul_case(draw):
    """Operands whose batch axes broadcast: each axis of the common batch kept or 1 in
    each operand, leading axes sometimes dropped; now and then a 1-D operand, or an empty
    axis."""
    dtype = draw(DTYPES)
    batch = draw(st.lists(st.integers(1, 3), max_size=3))
    sizes = st.integers(0, 5) if draw(st.integers(0, 5)) == 0 else st.integers(1, 6)
    m, k, n = draw(sizes), draw(sizes), draw(sizes)

    def operand(matrix, vector):
        if not batch and draw(st.integers(0, 3)) == 0:
            return vector
        kept = [s if draw(st.booleans()) else 1 for s in batch]
        return tuple(kept[draw(st.integers(0, len(kept))):]) + matrix
    a_shape, b_shape = operand((m, k), (k,)), operand((k, n), (k,))
    return array(draw, a_shape, dtype), array(draw, b_shape, dtype)
