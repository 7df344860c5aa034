"""Values for the fuzz suite: array recipes, and hypothesis strategies for the bad and
edge-case values of each kind of argument (see fuzz_cases.py for how calls are built).

An array argument is kept as a recipe (`Arr`): its values plus how to present them
(a non-contiguous or negative-stride view, read-only, a read-only np.memmap, on the
GPU). Every run of a case builds its arguments afresh, so each backend gets the same
layout and no run sees what another wrote in place.
"""

import os

import numpy as np
from hypothesis import strategies as st

FLOATS = (np.float32, np.float64)
BAD_DTYPES = ["int32", "int64", "uint8", "bool", "complex64", "complex128", "float16", "object",
              ">f4", ">f8"]
HUGE_INTS = [10**6, 10**10, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, 10**30]
MAX_ELEMENTS = 1 << 20   # the largest array a case builds (the "huge dims" are elsewhere)


class Arr:
    """An array argument: values and a presentation, rebuilt by build() for every run."""

    VIEWS = ("flip", "step", "fortran")

    def __init__(self, values, view=None, readonly=False, memmap=False):
        self.values, self.view = values, view
        self.readonly, self.memmap = readonly, memmap

    @property
    def shape(self):
        return self.values.shape

    @property
    def dtype(self):
        return self.values.dtype

    def like(self, values=None, **changes):
        """The same presentation of other values (or other presentation of these)."""
        kept = dict(view=self.view, readonly=self.readonly, memmap=self.memmap)
        kept.update(changes)
        return Arr(self.values if values is None else values, **kept)

    def build(self, device=False, folder=None):
        v = self.values.copy()   # never the recipe's own values: runs write in place
        if device:   # layout and writability do not apply there: a plain device copy
            from fastcnn.backends import to_device
            return to_device(np.ascontiguousarray(v))
        if self.memmap and v.size and v.dtype != object and folder is not None:
            path = os.path.join(folder, f"memmap{id(self)}-{os.getpid()}.bin")
            np.ascontiguousarray(v).tofile(path)
            return np.memmap(path, v.dtype, mode="r", shape=v.shape)
        if self.view == "flip" and v.ndim:     # negative strides, the same values
            a = np.ascontiguousarray(v[..., ::-1])[..., ::-1]
        elif self.view == "step" and v.ndim:   # every other element of a wider array
            a = np.zeros(v.shape[:-1] + (2 * v.shape[-1],), v.dtype)[..., ::2]
            a[...] = v
        elif self.view == "fortran":
            a = np.asfortranarray(v)
        else:
            a = v.copy()
        if self.readonly or self.memmap:
            a.flags.writeable = False
        return a

    def __repr__(self):
        d = self.values.dtype
        name = {"float32": "f32", "float64": "f64"}.get(
            d.name, d.str if d.byteorder == ">" else d.name)
        text = f"{name}{list(self.values.shape)}"
        finite = self.values.dtype.kind in "fc" and self.values.size
        if finite and not np.isfinite(self.values).all():
            text += "{nan/inf}"
        return text + "".join(f".{m}" for m, on in (
            (self.view, self.view), ("readonly", self.readonly and not self.memmap),
            ("memmap_r", self.memmap)) if on)


def build(value, device=False, folder=None):
    """A case's argument as the call gets it (tuples and lists rebuilt element by element)."""
    if isinstance(value, Arr):
        return value.build(device, folder)
    if isinstance(value, tuple):
        return tuple(build(v, device, folder) for v in value)
    if isinstance(value, list):
        return [build(v, device, folder) for v in value]
    return value


def short(value):
    """A one-line repr of an argument."""
    if isinstance(value, np.ndarray):
        value = Arr(value)
    if isinstance(value, Arr):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(short(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        inner = ", ".join(short(v) for v in value[:4]) + (", ..." if len(value) > 4 else "")
        return f"[{inner}]"
    if isinstance(value, np.generic):
        return f"np.{type(value).__name__}({value!r})"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**6:
        return ("-" if value < 0 else "") + _power(abs(value))
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _power(v):
    """2**63, 2**31-1, 10**10 written as such."""
    bits, digits = v.bit_length(), str(v)
    if v == 1 << (bits - 1):
        return f"2**{bits - 1}"
    if v == (1 << bits) - 1:
        return f"2**{bits}-1"
    if digits == "1" + "0" * (len(digits) - 1):
        return f"10**{len(digits) - 1}"
    return digits if len(digits) < 20 else f"~10**{len(digits) - 1}"


def random_array(rng, shape, dtype, low=-2.0, high=2.0):
    return rng.uniform(low, high, shape).astype(dtype)


# ---------------------------------------------------------------- bad values, by kind

SCALAR_JUNK = [None, "2", "", b"1", 1j, (), [], {}, object]


def bad_int():
    """For an int (or (h, w) pair) argument: out of range, huge, of the wrong type."""
    return st.one_of(
        st.sampled_from([0, -1, -2, -2**63, *HUGE_INTS, 1.0, 2.5, float("nan"), float("inf"),
                         True, False, *SCALAR_JUNK, (1,), (1, 2, 3), (1, None), (1, 2.0),
                         (True, 1), [0, 1], (2, -1), (10**10, 1), (1, 2**63),
                         np.float64(2.0), np.array([1, 2]), np.array(2.5)]),
        st.integers(-300, 300))   # (mid-sized ones would only make slow valid calls)


def odd_int(value):
    """Valid ints of other types: NumPy integers, a list for a pair."""
    return st.sampled_from([np.int64(value), np.int32(value), np.uint8(min(value, 255)),
                            [value, value], np.array(value)])


def bad_float():
    return st.one_of(
        st.sampled_from([float("nan"), float("inf"), float("-inf"), -1.0, -1e-30, 1.0, 1.5, 2,
                         0, 10**400, -10**400, True, *SCALAR_JUNK, "0.1", (0.1,),
                         np.array([0.1, 0.2]), np.float16(0.1), np.float32(0.5)]),
        st.floats(allow_nan=True, allow_infinity=True))


def bad_bool():
    return st.sampled_from([0, 1, 2, None, "yes", "", np.bool_(True), [], [0], 0.5])


def bad_shape(shape):
    """For an input_shape argument."""
    shape = tuple(shape)
    return st.sampled_from([
        shape[:-1], shape + (1,), (), None, "shape", 4, shape[:-1] + (0,), shape[:-1] + (-1,),
        (0,) + shape[1:], shape[:-1] + (10**6,), shape[:-1] + (2**31,), shape[:-1] + (2**63,),
        (2**40,) + shape[1:], tuple(float(s) for s in shape), shape[:-1] + (None,),
        shape[:-1] + (True,), list(shape), np.array(shape), shape[:-1] + (shape[-1] + 1,),
        shape[:1] + (shape[1] + 1,) + shape[2:]])


def bad_array(draw, arr, partner=None):
    """A float array argument made wrong (or odd but valid: views, NaN, read-only, lists)."""
    v = arr.values
    kind = draw(st.sampled_from([
        "rank+", "rank-", "dtype", "dtype", "mixed", "view", "view", "zero", "huge", "nan",
        "nan", "python", "python", "shape", "readonly", "list", "memmap"]))
    if kind == "rank+":
        return Arr(v[None])
    if kind == "rank-":
        return Arr(np.ones(v.shape[1:], v.dtype) if v.ndim <= 1 or not len(v) else v[0])
    if kind == "dtype":
        dtype = draw(st.sampled_from(BAD_DTYPES))
        return Arr(v.astype(dtype))
    if kind == "mixed":   # the other float dtype than its partners'
        other = np.float64 if (partner or v.dtype) == np.float32 else np.float32
        return arr.like(v.astype(other))
    if kind == "view":
        return arr.like(view=draw(st.sampled_from(Arr.VIEWS)))
    if kind in ("zero", "huge") and v.ndim:
        axis = draw(st.integers(0, v.ndim - 1))
        size = 0 if kind == "zero" else draw(st.sampled_from([10**5, MAX_ELEMENTS]))
        shape = tuple(size if a == axis else (1 if kind == "huge" else s)
                      for a, s in enumerate(v.shape))
        return Arr(np.ones(shape, v.dtype) if kind == "huge" else np.zeros(shape, v.dtype))
    if kind == "nan" and v.size:
        w = v.astype(np.float64) if v.dtype.kind not in "fc" else v.copy()
        flat = w.reshape(-1)
        for _ in range(draw(st.integers(1, 3))):
            flat[draw(st.integers(0, v.size - 1))] = draw(st.sampled_from(
                [np.nan, np.inf, -np.inf]))
        return arr.like(w)
    if kind == "python":
        return draw(st.sampled_from([None, 1.5, 0, True, "x", {"a": 1}, np.float32(1.0),
                                     np.array(1.0, v.dtype), object(), [[1.0, 2.0], [3.0]]]))
    if kind == "shape" and v.ndim:
        axis = draw(st.integers(0, v.ndim - 1))
        shape = tuple(s + 1 if a == axis else s for a, s in enumerate(v.shape))
        return arr.like(np.ones(shape, v.dtype))
    if kind == "readonly":
        return arr.like(readonly=True)
    if kind == "memmap":
        return arr.like(memmap=True)
    return v.tolist()   # a nested list: float64 to the ops


def bad_int_array(draw, arr, high):
    """For labels and indices: out of range, not integers, wrong shape."""
    v = arr.values
    kind = draw(st.sampled_from(["range", "range", "dtype", "rank", "shape", "python",
                                 "view", "readonly"]))
    if kind == "range" and v.size:
        w = v.copy()
        w.reshape(-1)[draw(st.integers(0, v.size - 1))] = draw(st.sampled_from(
            [-1, high, high + 1, 2**31 - 1, -2**31]))
        return Arr(w)
    if kind == "dtype":
        return Arr(v.astype(draw(st.sampled_from(
            ["float32", "float64", "bool", "int8", "int16", "uint64", "uint32", "object",
             ">i4"]))))
    if kind == "rank":
        return Arr(v[None] if draw(st.booleans()) or v.ndim == 0 else v.reshape(-1))
    if kind == "shape" and v.ndim:
        return Arr(np.zeros(v.shape[:-1] + (v.shape[-1] + 1,), v.dtype))
    if kind == "view":
        return arr.like(view=draw(st.sampled_from(Arr.VIEWS)))
    if kind == "readonly":
        return arr.like(readonly=True)
    return draw(st.sampled_from([None, 0, 1.5, "0", v.tolist(), [0.5]]))


def bad_out(draw, specs):
    """For out=: specs is the list of (shape, dtype) the op returns (one for an array)."""
    multi = len(specs) > 1
    i = draw(st.integers(0, len(specs) - 1))
    shape, dtype = specs[i]
    kind = draw(st.sampled_from(["memmap", "readonly", "shape", "dtype", "layout", "readonly",
                                 "memmap", "memmap", "python", "tuple", "alias"]))
    good = Arr(np.full(shape, np.nan, dtype) if np.dtype(dtype).kind == "f"
               else np.zeros(shape, dtype))
    if kind == "shape":
        wrong = Arr(np.zeros(tuple(shape)[:-1] + (shape[-1] + 1,) if shape else (2,), dtype))
    elif kind == "dtype":
        wrong = Arr(good.values.astype(draw(st.sampled_from(
            ["float64" if np.dtype(dtype) == np.float32 else "float32", "int32", "float16",
             ">f4", "bool"]))))
    elif kind == "layout":
        wrong = good.like(view=draw(st.sampled_from(Arr.VIEWS)))
    elif kind == "readonly":
        wrong = good.like(readonly=True)
    elif kind == "memmap":
        wrong = good.like(memmap=True)
    elif kind == "python":
        wrong = draw(st.sampled_from([0.0, "out", [0.0], good.values.tolist()]))
    elif kind == "tuple":   # a tuple where one array is due, or the wrong number of them
        return (good,) if not multi else tuple(
            Arr(np.zeros(s, d)) for s, d in specs[:-1])
    else:
        wrong = Arr(good.values.reshape(-1))
    if not multi:
        return wrong
    return tuple(wrong if j == i else (None if draw(st.booleans()) else Arr(
        np.full(s, np.nan, d) if np.dtype(d).kind == "f" else np.zeros(s, d)))
        for j, (s, d) in enumerate(specs))


def good_out(draw, specs):
    """A valid out=: arrays of the result's shapes and dtypes, full of NaN (so a kernel that
    accumulates into out instead of overwriting it shows), some entries None."""
    arrays = [Arr(np.full(s, np.nan, d) if np.dtype(d).kind == "f" else np.zeros(s, d))
              for s, d in specs]
    if len(arrays) == 1:
        return arrays[0]
    return tuple(None if draw(st.booleans()) else a for a in arrays)
