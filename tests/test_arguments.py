"""Every op of fastcnn.functional refuses what it cannot use, before a kernel sees it:
an unusable out= (read-only, a read-only np.memmap, wrong shape, dtype, layout or
device, not an array, overlapping an input or another output), None or other non-
arrays where an array goes, non-float dtypes, sizes the kernels' C int cannot hold,
and results larger than memory. Each error is a ValueError or TypeError naming the
op and the argument."""

import copy
import inspect
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import fastcnn.functional as F
from fastcnn import _args
from helpers import cuda_usable, host, to_backend


def f32(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _calls():
    """A valid call of every public op: op -> (positional arguments, keyword arguments)."""
    x, w, logits = f32(2, 3, 6, 6), f32(4, 3, 3, 3), f32(4, 3)
    labels = np.array([0, 2, 1, 2])
    y_pool, idx = F.max_pool2d(x, 2)
    y_max, idx_max = F.maxout(f32(2, 6, 2), 3)
    probs = F.softmax(logits)
    y_bn, mean, invstd = F.batch_norm(x, np.ones(3, np.float32), np.zeros(3, np.float32))
    p, g = f32(3, 2), f32(3, 2, seed=1)
    line, wt, w1 = f32(2, 3, 6), f32(3, 2, 3, 3), f32(4, 3, 3)
    y_line, idx_line = F.max_pool1d(line, 2)
    y_amax, idx_amax = F.adaptive_max_pool2d(x, 2)
    y_amax1, idx_amax1 = F.adaptive_max_pool1d(line, 2)

    def state(n):
        return [np.zeros((3, 2), np.float32) for _ in range(n)]

    unary = {op: ((x,), {}) for op in ("relu", "leaky_relu", "elu", "sigmoid", "tanh")}
    backward = {f"{op}_backward": ((x, F.relu(x)), {}) for op in unary}
    return {
        **unary, **backward,
        "im2col": ((x, 3), {}),
        "col2im": ((F.im2col(x, 3), x.shape, 3), {}),
        "conv2d": ((x, w, f32(4)), {"padding": 1}),
        "conv2d_backward": ((f32(2, 4, 6, 6), x, w), {"padding": 1}),
        "conv_transpose2d": ((x, wt, f32(2)), {"stride": 2}),
        "conv_transpose2d_backward": ((f32(2, 2, 13, 13), x, wt), {"stride": 2}),
        "conv1d": ((line, w1, f32(4)), {"padding": 1}),
        "conv1d_backward": ((f32(2, 4, 6), line, w1), {"padding": 1}),
        "max_pool1d": ((line, 2), {}),
        "max_pool1d_backward": ((y_line, idx_line, line.shape), {}),
        "avg_pool1d": ((line, 2), {}),
        "avg_pool1d_backward": ((y_line, line.shape, 2), {}),
        "adaptive_avg_pool2d": ((x, 2), {}),
        "adaptive_avg_pool2d_backward": ((y_amax, x.shape), {}),
        "adaptive_max_pool2d": ((x, 2), {}),
        "adaptive_max_pool2d_backward": ((y_amax, idx_amax, x.shape), {}),
        "adaptive_avg_pool1d": ((line, 2), {}),
        "adaptive_avg_pool1d_backward": ((y_amax1, line.shape), {}),
        "adaptive_max_pool1d": ((line, 2), {}),
        "adaptive_max_pool1d_backward": ((y_amax1, idx_amax1, line.shape), {}),
        "upsample_bilinear2d": ((x, 1.5), {}),
        "upsample_bilinear2d_backward": ((f32(2, 3, 9, 9), x.shape, 1.5), {}),
        "log_softmax": ((logits,), {}),
        "log_softmax_backward": ((logits, F.log_softmax(logits)), {}),
        "matmul_backward": ((f32(3, 5), f32(3, 4), f32(4, 5)), {}),
        "max_pool2d": ((x, 2), {}),
        "max_pool2d_backward": ((y_pool, idx, x.shape), {}),
        "avg_pool2d": ((x, 2), {}),
        "avg_pool2d_backward": ((y_pool, x.shape, 2), {}),
        "upsample_nearest2d": ((x, 2), {}),
        "upsample_nearest2d_backward": ((x, 2), {}),
        "matmul": ((f32(3, 4), f32(4, 5)), {}),
        "linear": ((f32(3, 4), f32(5, 4), f32(5)), {}),
        "linear_backward": ((f32(3, 5), f32(3, 4), f32(5, 4)), {}),
        "add": ((x, f32(2, 3, 6, 6, seed=1)), {}),
        "multiply": ((x, f32(2, 3, 6, 6, seed=1)), {}),
        "concat": (([x, f32(2, 1, 6, 6, seed=1)],), {}),
        "concat_backward": ((f32(2, 4, 6, 6), (3, 1)), {}),
        "softmax": ((logits,), {}),
        "softmax_backward": ((logits, probs), {}),
        "maxout": ((f32(2, 6, 2), 3), {}),
        "maxout_backward": ((y_max, idx_max, 3), {}),
        "dropout": ((x, 0.5, 1), {}),
        "dropout_backward": ((x, F.dropout(x, 0.5, 1)[1]), {}),
        "batch_norm": ((x, np.ones(3, np.float32), np.zeros(3, np.float32),
                        np.zeros(3, np.float32), np.ones(3, np.float32)), {}),
        "batch_norm_backward": ((f32(*y_bn.shape), x, np.ones(3, np.float32), mean, invstd),
                                {}),
        "softmax_cross_entropy": ((logits, labels), {}),
        "softmax_cross_entropy_backward": ((probs, labels), {}),
        "bce_with_logits": ((logits, probs), {}),
        "bce_with_logits_backward": ((logits, probs), {}),
        "bce": ((probs, probs), {}),
        "bce_backward": ((probs, probs), {}),
        "mse": ((logits, probs), {}),
        "mse_backward": ((logits, probs), {}),
        "count_correct": ((logits, labels), {}),
        "sgd_step": ((p, g, *state(1)), {"momentum": 0.9}),
        "adam_step": ((p, g, *state(2), 1), {}),
        "adagrad_step": ((p, g, *state(1), 1), {}),
        "rmsprop_step": ((p, g, *state(2)), {"momentum": 0.9}),
        "adadelta_step": ((p, g, *state(2)), {}),
    }


_CALLS = _calls()
OPS = sorted(_CALLS)


def calls():
    """_CALLS with fresh arrays (some ops update theirs in place)."""
    return copy.deepcopy(_CALLS)


# Arguments that may be None: the op then does without them.
OPTIONAL = {("conv2d", "bias"), ("conv_transpose2d", "bias"), ("conv1d", "bias"),
            ("linear", "bias")}
# Arrays an op updates in place (checked like out=, so never converted).
IN_PLACE = {"param", "velocity", "m", "v", "sum_sq", "square_avg", "buf", "acc_delta",
            "running_mean", "running_var"}


def names(op):
    return list(inspect.signature(getattr(F, op)).parameters)


def array_args(op, kinds="f"):
    """(position, name) of the arguments of op's valid call that are arrays of kinds."""
    args, _ = _CALLS[op]
    return [(i, names(op)[i]) for i, a in enumerate(args)
            if isinstance(a, np.ndarray) and a.dtype.kind in kinds]


def call(op, args, kwargs, backend="cpu"):
    return getattr(F, op)(*to_backend(backend, *args), backend=backend, **kwargs)


def test_the_table_covers_every_op():
    public = {name for name, f in vars(F).items() if inspect.isfunction(f)
              and f.__module__.startswith(F.__name__) and not name.startswith("_")}
    assert public == set(OPS)


# ---------------------------------------------------------------- arrays in


NOT_ARRAYS = [None, "abc", {"a": 1}, object(), [[1.0], [1.0, 2.0]]]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("bad", NOT_ARRAYS, ids=["None", "str", "dict", "object", "ragged"])
def test_no_array_is_named(op, bad):
    args, kwargs = calls()[op]
    for i, name in array_args(op, "fiu"):
        if bad is None and (op, name) in OPTIONAL:
            continue
        changed = list(args)
        changed[i] = bad
        with pytest.raises((TypeError, ValueError)) as caught:
            call(op, changed, kwargs)
        assert str(caught.value).startswith(f"{op}: ") and name in str(caught.value), (
            name, caught.value)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.complex64, np.float16, object])
def test_non_float_dtypes_are_refused(op, dtype):
    """A TypeError, or for the arrays updated in place the ValueError of an out= of the
    wrong dtype."""
    args, kwargs = calls()[op]
    for i, name in array_args(op):
        changed = list(args)
        changed[i] = args[i].astype(dtype)
        error = (TypeError, ValueError) if name in IN_PLACE else TypeError
        with pytest.raises(error, match=f"{op}: .*{name}"):
            call(op, changed, kwargs)


@pytest.mark.parametrize("op", OPS)
def test_big_endian_floats_are_read_in_native_order(op):
    """A big-endian input gives the native one's result; an array the op updates in place
    cannot be converted, and is refused."""
    args, kwargs = calls()[op]
    want = host(call(op, args, kwargs))
    flipped = [a.astype(a.dtype.newbyteorder(">")) if isinstance(a, np.ndarray)
               and a.dtype.kind == "f" else a for a in calls()[op][0]]
    in_place = [name for _, name in array_args(op) if name in IN_PLACE]
    if in_place:
        with pytest.raises((TypeError, ValueError), match=in_place[0]):
            call(op, flipped, kwargs)
        return
    got = host(call(op, flipped, kwargs))
    for g, w in zip(got if isinstance(got, tuple) else (got,),
                    want if isinstance(want, tuple) else (want,)):
        np.testing.assert_array_equal(g, w)


def test_lists_and_numpy_scalars_are_still_accepted():
    np.testing.assert_array_equal(F.relu([1.0, -2.0]), [1.0, 0.0])
    assert F.relu(np.float32(-3)) == 0 and F.sigmoid(np.float64(0)) == 0.5
    np.testing.assert_array_equal(F.matmul([[1.0, 2.0]], [[3.0], [4.0]]), [[11.0]])
    assert F.mse([1.0, 2.0], [1.0, 4.0]) == 2.0


# ---------------------------------------------------------------- out=


def outputs(op):
    """The (shape, dtype) of each out= entry of op, and whether out takes a tuple; None for
    ops without out=."""
    params = inspect.signature(getattr(F, op)).parameters
    if "out" not in params and "into" not in params:
        return None
    if "into" in params:
        return [((1,), np.dtype(np.int64))], False
    args, kwargs = calls()[op]
    result = call(op, args, kwargs)
    if op == "softmax_cross_entropy":
        result = result[1]     # (loss, probs): out is probs
    results = result if isinstance(result, tuple) else (result,)
    return [(r.shape, r.dtype) for r in results], isinstance(result, tuple)


def bad_outs(shape, dtype, tmp_path):
    """(name, array, error, message) of out= arrays the op must refuse."""
    other = np.dtype(np.float64 if dtype == np.float32 else
                     np.float32 if dtype.kind == "f" else np.int64 if dtype == np.int32
                     else np.int32)
    read_only = np.zeros(shape, dtype)
    read_only.setflags(write=False)
    path = tmp_path / "out.bin"
    np.memmap(path, dtype, "w+", shape=shape).flush()
    strided = np.zeros(shape[:-1] + (2 * shape[-1],), dtype)[..., ::2]
    strided = [] if shape[-1] == 1 else [   # a strided axis of length 1 is contiguous
        ("not C-contiguous", strided, ValueError, "C-contiguous")]
    return strided + [
        ("read-only", read_only, ValueError, "read-only"),
        ("read-only memmap", np.memmap(path, dtype, "r", shape=shape), ValueError, "read-only"),
        ("wrong shape", np.zeros(shape + (1,), dtype), ValueError, "must have shape"),
        ("wrong dtype", np.zeros(shape, other), ValueError, "dtype"),
        ("a list", np.zeros(shape, dtype).tolist(), TypeError, "must be a NumPy array"),
    ]


OUT_OPS = [op for op in OPS if outputs(op) is not None]


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("op", OUT_OPS)
def test_unusable_out_is_refused(op, backend, tmp_path):
    args, kwargs = calls()[op]
    specs, is_tuple = outputs(op)
    key = "into" if op == "count_correct" else "out"
    for i, (shape, dtype) in enumerate(specs):
        name = f"out[{i}]" if is_tuple else key
        for what, bad, error, message in bad_outs(shape, dtype, tmp_path):
            before = np.array(bad, copy=True) if isinstance(bad, np.ndarray) else None
            out = tuple(bad if j == i else None for j in range(len(specs))) if is_tuple else bad
            with pytest.raises(error, match=f"{op}: {name.replace('[', '.').replace(']', '.')}"
                                            f" .*{message}"):
                call(op, args, {**kwargs, key: out}, backend)
            if before is not None:
                np.testing.assert_array_equal(bad, before, err_msg=what)   # untouched


def overlapping(a, shape, dtype, offset):
    """(a copy of a, an array of shape and dtype) sharing memory: the second starts offset
    bytes into the first."""
    buf = np.zeros(a.nbytes + offset + int(np.prod(shape)) * dtype.itemsize, np.uint8)
    first = buf[:a.nbytes].view(a.dtype).reshape(a.shape)
    first[...] = a
    second = buf[offset:offset + int(np.prod(shape)) * dtype.itemsize].view(dtype)
    return first, second.reshape(shape)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("op", OUT_OPS)
def test_out_overlapping_an_input_is_refused(op, backend):
    args, kwargs = calls()[op]
    specs, is_tuple = outputs(op)
    key = "into" if op == "count_correct" else "out"
    if not array_args(op):
        pytest.skip(f"{op} takes its arrays in a list")
    (i, name), = array_args(op)[:1]
    shape, dtype = specs[0]
    inp, out = overlapping(args[i], shape, dtype, 8)   # starts inside the input: partly
    changed = list(args)
    changed[i] = inp
    out = (out,) + (None,) * (len(specs) - 1) if is_tuple else out
    with pytest.raises(ValueError, match=f"{op}: .* overlaps {name} in memory"):
        call(op, changed, {**kwargs, key: out}, backend)


def test_outputs_must_not_overlap_each_other():
    x = f32(2, 3, 6, 6)
    y, same = overlapping(np.zeros((2, 3, 3, 3), np.float32), (2, 3, 3, 3), np.dtype(np.int32),
                          0)
    with pytest.raises(ValueError, match=r"max_pool2d: out\[1\] overlaps out\[0\]"):
        F.max_pool2d(x, 2, out=(y, same))


@pytest.mark.parametrize("backend", ["reference", "cpu"] + (["cuda"] if cuda_usable() else []))
def test_elementwise_ops_may_write_in_place(backend):
    x = f32(4, 5)
    want = np.maximum(x, 0)
    (xd,) = to_backend(backend, x)
    assert F.relu(xd, out=xd, backend=backend) is xd
    np.testing.assert_array_equal(host(xd), want)
    dy, y = to_backend(backend, f32(4, 5, seed=1), want)
    F.relu_backward(dy, y, out=dy, backend=backend)
    np.testing.assert_array_equal(host(dy), np.where(want > 0, f32(4, 5, seed=1), 0))
    inp, out = overlapping(x, (4, 5), x.dtype, 4)   # one element in: not x itself
    if backend != "cuda":
        with pytest.raises(ValueError, match=r"relu may write into x itself, but not into a "
                                             r"part of it"):
            F.relu(inp, out=out, backend=backend)


@pytest.mark.skipif(not cuda_usable(), reason="fastcnn.backends.cuda is not available")
def test_out_on_the_wrong_device_is_refused():
    from fastcnn import to_device
    x = f32(2, 3)
    with pytest.raises(TypeError, match="relu: out must be a CUDA array .*got ndarray"):
        F.relu(to_device(x), out=np.zeros_like(x))
    with pytest.raises(TypeError, match="relu: out must be a NumPy array .*got"):
        F.relu(x, out=to_device(np.zeros_like(x)))


def test_conv2d_into_a_read_only_memmap_does_not_crash(tmp_path):
    """The segfault of issue 11: conv2d and conv2d_backward writing into np.memmap(mode="r")
    (in a child process, so that a crash cannot take the test runner down)."""
    script = textwrap.dedent(f"""
        import numpy as np
        import fastcnn.functional as F
        x = np.ones((2, 16, 8, 8), np.float32)
        w = np.ones((16, 16, 3, 3), np.float32)
        path = {str(tmp_path / "y.bin")!r}
        np.memmap(path, np.float32, "w+", shape=x.shape).flush()
        ro = np.memmap(path, np.float32, "r", shape=x.shape)
        for call in (lambda: F.conv2d(x, w, padding=1, out=ro),
                     lambda: F.conv2d_backward(x, x, w, padding=1, out=(ro, None, None))):
            try:
                call()
            except ValueError as e:
                print("refused:", e)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("is read-only") == 2, done.stdout


def test_in_place_arrays_are_checked_like_out():
    p, g = f32(3, 2), f32(3, 2, seed=1)
    m, v = np.zeros_like(p), np.zeros_like(p)
    frozen = p.copy()
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match="adam_step: param is read-only"):
        F.adam_step(frozen, g, m, v, 1)
    with pytest.raises(ValueError, match="adam_step: v overlaps m in memory"):
        F.adam_step(p, g, m, m, 1)
    with pytest.raises(TypeError, match="adam_step: m is updated in place, so it must be an "
                                        "array, got None"):
        F.adam_step(p, g, None, v, 1)
    with pytest.raises(TypeError, match="sgd_step: param is updated in place"):
        F.sgd_step(p.tolist(), g)
    x, gamma, beta = f32(4, 3), np.ones(3, np.float32), np.zeros(3, np.float32)
    mean, var = np.zeros(3, np.float32), np.ones(3, np.float32)
    var.setflags(write=False)
    with pytest.raises(ValueError, match="batch_norm: running_var is read-only"):
        F.batch_norm(x, gamma, beta, mean, var)
    F.batch_norm(x, gamma, beta, mean, var, training=False)   # only read in evaluation


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize("op, args, kwargs, match", [
    ("conv2d", (f32(2, 3, 8, 8), f32(4, 3, 3, 3)), dict(stride=10**10),
     "conv2d: stride must be <= 2,147,483,647"),
    ("max_pool2d", (f32(2, 3, 8, 8), 2**63), {}, "max_pool2d: kernel_size must be <= 2,147,"),
    ("im2col", (f32(2, 3, 8, 8), 3), dict(dilation=(1, 2**40)), "im2col: dilation must be <="),
    ("conv2d", (f32(2, 3, 8, 8), f32(4, 3, 3, 3)), dict(padding=2**31 - 1),
     "conv2d: along H the padded input .* exceeds 2,147,483,647"),
    ("max_pool2d_backward", (f32(1, 1, 1, 1), np.zeros((1, 1, 1, 1), np.int32),
                             (1, 1, 2**32, 1)), {}, "input_shape must be <="),
    ("conv2d", (f32(2, 3, 8, 8), f32(4, 3, 3, 3)), dict(padding=10**6),
     r"conv2d: one image's column matrix has shape \(27, 4000024000036\)"),
    ("upsample_nearest2d", (f32(2, 3, 8, 8), 10**6), {},
     r"upsample_nearest2d: the output of 2x3x8000000x8000000 .* is more than the kernels "
     r"index \(2,147,483,647\)"),
    ("conv_transpose2d", (f32(1, 1, 8, 8), f32(1, 1, 3, 3)), dict(stride=2**30),
     "conv_transpose2d: the uncropped output would be 7,516,192,771x"),
    ("conv1d", (f32(1, 1, 8), f32(1, 1, 3)), dict(padding=2**31 - 5),
     "conv1d: the padded input .* exceeds 2,147,483,647"),
    ("avg_pool2d_backward", (f32(1, 1, 1, 1), (1, 1, 2**16, 2**16), 2**16), {},
     "the result has shape"),
])
def test_sizes_beyond_c_int_are_refused_before_allocating(op, args, kwargs, match):
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match):
            getattr(F, op)(*args, **kwargs)
        assert tracemalloc.get_traced_memory()[1] < 2**20   # nothing big was allocated
    finally:
        tracemalloc.stop()


def test_inputs_beyond_c_int_are_refused_without_a_copy():
    huge = np.broadcast_to(np.float32(0), (2**31,))   # no memory of its own
    with pytest.raises(ValueError, match=r"relu: x has shape \(2147483648,\)"):
        F.relu(huge)


def test_results_larger_than_memory_are_refused(monkeypatch):
    monkeypatch.setattr(_args, "HOST_MEMORY", 1000)
    with pytest.raises(ValueError, match=r"matmul: the result of shape \(20, 20\) would need "
                                         r".* more than this machine's"):
        F.matmul(f32(20, 1), f32(1, 20))


def test_linear_backward_need_dx(any_backend):
    dy, x, w = f32(3, 5), f32(3, 4), f32(5, 4)
    full = host(call("linear_backward", (dy, x, w), {}, any_backend))
    dx, dw, db = host(call("linear_backward", (dy, x, w, False), {}, any_backend))
    assert dx is None
    np.testing.assert_allclose(dw, full[1], rtol=1e-6)
    np.testing.assert_allclose(db, full[2], rtol=1e-6)
    with pytest.raises(TypeError, match="linear_backward: need_dx must be True or False"):
        F.linear_backward(dy, x, w, need_dx="no")
