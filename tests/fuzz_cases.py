"""Fuzz cases for every public op of fastcnn.functional, built from its signature.

`ops()` lists the module's public functions, so an op added later is fuzzed with no
new test. A case starts from a valid call: the parameter names say what each argument
is (x, weight, dy, indices, input_shape, kernel_size, ...), `family` which shapes tie
them together, and `valid` gives each a sensible value; a backward op's dy, y, indices,
mask, mean, ... come from running its forward op on the reference backend. Then one or
two arguments are replaced by a bad or edge-case value of their kind (fuzz_values).
"""

import inspect
import os

import numpy as np
from hypothesis import strategies as st

import fastcnn.functional as F
from fuzz_values import (FLOATS, Arr, bad_array, bad_bool, bad_float, bad_int, bad_int_array,
                         bad_out, bad_shape, build, good_out, odd_int, random_array, short)

# The op whose results a backward-like op takes, where the name does not say it.
FORWARD = {"col2im": "im2col"}
# What the ops returning several things return, by role.
OUTPUTS = {"max_pool2d": ("y", "indices"), "maxout": ("y", "indices"), "dropout": ("y", "mask"),
           "batch_norm": ("y", "mean", "invstd"), "softmax_cross_entropy": ("loss", "probs"),
           "im2col": ("cols",)}

ARRAY_ROLES = {"x", "weight", "bias", "a", "b", "cols", "dy", "y", "gamma", "beta",
               "running_mean", "running_var", "mean", "invstd", "mask", "logits", "scores",
               "probs", "pred", "targets", "target", "param", "grad", "velocity", "m", "v",
               "sum_sq", "square_avg", "acc_delta", "buf"}
INT_ARRAY_ROLES = {"labels", "indices"}
INT_ROLES = {"kernel_size", "stride", "padding", "dilation", "scale_factor", "pool_size", "seed",
             "step"}
BOOL_ROLES = {"training", "need_dx", "nesterov"}
NONNEGATIVE = {"v", "sum_sq", "square_avg", "acc_delta", "running_var"}
CUDA_EVERY = int(os.environ.get("FUZZ_CUDA_EVERY", "10"))   # 1 in this many runs on cuda too


def ops():
    """Every public function of fastcnn.functional (its __all__, if it gets one)."""
    names = getattr(F, "__all__", None) or [
        name for name, f in vars(F).items() if inspect.isfunction(f)
        and not name.startswith("_") and f.__module__.startswith(F.__name__)]
    return sorted(names)


def parameters(fn):
    """{name: default or inspect.Parameter.empty}, without backend."""
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.name != "backend"}


def forward_of(name):
    fwd = FORWARD.get(name)
    if fwd is None and name.endswith("_backward"):
        fwd = name[:-len("_backward")]
    return fwd if hasattr(F, fwd or "-") else None


def family(names):
    """Which shapes tie the arguments together, from the parameter names."""
    names = set(names)
    rules = [("weight" in names and "stride" in names, "conv"), ("cols" in names, "window"),
             ("weight" in names, "linear"), ("kernel_size" in names and "dilation" in names,
                                             "window"),
             ("kernel_size" in names or "input_shape" in names, "pool"),
             ("scale_factor" in names, "upsample"), ({"a", "b"} <= names, "matmul"),
             ("pool_size" in names, "maxout"), ("gamma" in names, "batch_norm"),
             ("labels" in names, "classify"), ("param" in names, "step"),
             (bool(names & {"target", "targets"}), "pairwise")]
    return next((fam for hit, fam in rules if hit), "elementwise")


def _pair(draw, low, high):
    return (draw(st.integers(low, high)), draw(st.integers(low, high)))


def _as_arg(draw, pair):
    """A pair as the user may write it: an int when square, a tuple, a list."""
    if pair[0] == pair[1] and draw(st.booleans()):
        return pair[0]
    return list(pair) if draw(st.integers(0, 4)) == 0 else tuple(pair)


def geometry(draw, fam):
    """Sizes that fit together for this family of op."""
    g = dict(dtype=np.dtype(draw(st.sampled_from(FLOATS))), n=draw(st.integers(1, 3)),
             c=draw(st.integers(1, 4)), k=draw(st.integers(1, 4)))
    if fam in ("conv", "window", "pool"):
        if fam == "conv" and draw(st.integers(0, 2)) == 0:   # the Winograd path's shapes
            g.update(c=draw(st.integers(16, 17)), k=draw(st.integers(16, 17)), kernel=(3, 3),
                     stride=(1, 1), dilation=(1, 1), padding=_pair(draw, 0, 2))
        else:
            kernel = _pair(draw, 1, 4)
            g.update(kernel=kernel, stride=_pair(draw, 1, 3),
                     dilation=(1, 1) if fam == "pool" else _pair(draw, 1, 2),
                     padding=(draw(st.integers(0, kernel[0] // 2)),
                              draw(st.integers(0, kernel[1] // 2))) if fam == "pool"
                     else _pair(draw, 0, 2))
        extent = [d * (k - 1) + 1 for d, k in zip(g["dilation"], g["kernel"])]
        g["hw"] = tuple(draw(st.integers(max(1, e - 2 * p), e - 2 * p + 6))
                        for e, p in zip(extent, g["padding"]))
    g["hw"] = g.get("hw", _pair(draw, 1, 5))
    g["scale"] = _pair(draw, 1, 3)
    g["pool"] = draw(st.integers(1, 3))
    g["classes"] = draw(st.integers(1, 5))
    g["mkn"] = tuple(draw(st.integers(1, 9)) for _ in range(3))
    g["rank"] = draw(st.integers(1, 4))
    g["shape"] = tuple(draw(st.integers(1, 4)) for _ in range(g["rank"]))
    g["bn_rank"] = draw(st.sampled_from([2, 4]))
    g["seed"] = draw(st.integers(0, 2**32 - 1))
    if draw(st.integers(0, 4)) == 0:   # an empty dimension, the same in every argument
        empty = draw(st.sampled_from(
            ["c", "hw", "hw"] if fam in ("conv", "window", "pool", "upsample") else
            ["mkn"] if fam in ("matmul", "linear") else ["c", "shape"]))
        if empty == "c":
            g["c"] = 0
        else:
            sizes = list(g[empty])
            axis = draw(st.integers(0, len(sizes) - 1))
            sizes[axis] = 0
            g[empty] = tuple(sizes)
            if empty == "hw" and "kernel" in g:   # a window that fits in the padding alone
                for key, value in (("kernel", 2), ("padding", 1), ("dilation", 1)):
                    g[key] = tuple(value if a == axis else v for a, v in enumerate(g[key]))
    return g


def _shape(role, fam, g):
    """The shape of an array argument in a valid call."""
    n, c, k, (h, w), (m, kk, nn) = g["n"], g["c"], g["k"], g["hw"], g["mkn"]
    image = (n, c, h, w)
    shapes = {
        "conv": lambda: {"x": image, "weight": (k, c) + g["kernel"], "bias": (k,)},
        "window": lambda: {"x": image}, "pool": lambda: {"x": image},
        "upsample": lambda: {"x": image}, "matmul": lambda: {"a": (m, kk), "b": (kk, nn)},
        "linear": lambda: {"x": (n, kk), "weight": (m, kk), "bias": (m,)},
        "maxout": lambda: {"x": (n, c * g["pool"]) + g["shape"][:g["rank"] - 2]},
        "batch_norm": lambda: {"x": (n, c) if g["bn_rank"] == 2 else image},
        "classify": lambda: {"logits": (n, g["classes"]), "scores": (n, g["classes"]),
                             "probs": (n, g["classes"]), "labels": (n,)},
    }.get(fam, dict)()
    if fam == "batch_norm" and role != "x":
        return (c,)
    return shapes.get(role, g["shape"])


def valid(draw, role, fam, g, rng, scalars):
    """A valid value for the argument called role (scalars: those drawn already)."""
    dtype = g["dtype"]
    if role in ARRAY_ROLES:
        if role == "bias" and draw(st.booleans()):
            return None
        if role in ("velocity", "buf") and not scalars.get("momentum"):
            return None
        if role in ("running_mean", "running_var") and scalars.get("training", True) and \
                draw(st.booleans()):
            return None
        shape = _shape(role, fam, g)
        low, high = (0.01, 0.99) if role in ("probs", "targets", "target") and \
            fam != "classify" else (0.0 if role in NONNEGATIVE else -2.0, 2.0)
        values = random_array(rng, shape, dtype, low, high)
        if fam == "pool":   # few distinct values: ties must break the same way
            values = (values * 2).round().astype(dtype)
        return Arr(values)
    if role == "labels":
        return Arr(rng.integers(0, g["classes"], g["n"]).astype(
            draw(st.sampled_from(["int64", "int32"]))))
    picks = {"kernel_size": g.get("kernel"), "stride": g.get("stride"),
             "padding": g.get("padding"), "dilation": g.get("dilation"),
             "scale_factor": g["scale"]}
    if role in picks:
        if role == "stride" and fam == "pool" and draw(st.booleans()):
            return None   # defaults to kernel_size
        return _as_arg(draw, picks[role] or (1, 1))
    simple = {"pool_size": lambda: g["pool"], "seed": lambda: draw(st.integers(0, 2**40)),
              "step": lambda: draw(st.integers(1, 5)),
              "p": lambda: draw(st.sampled_from([0.0, 0.25, 0.5, 0.9])),
              "negative_slope": lambda: draw(st.floats(-1, 1)),
              "alpha": lambda: draw(st.floats(0, 1)),
              "momentum": lambda: draw(st.sampled_from([0.0, 0.5, 0.9])),
              "eps": lambda: draw(st.sampled_from([1e-8, 1e-5, 0.1])),
              "lr": lambda: draw(st.sampled_from([0.0, 1e-3, 0.1])),
              "lr_decay": lambda: draw(st.sampled_from([0.0, 0.1])),
              "weight_decay": lambda: draw(st.sampled_from([0.0, 0.01])),
              "beta1": lambda: draw(st.sampled_from([0.0, 0.9])),
              "beta2": lambda: draw(st.sampled_from([0.5, 0.999])),
              "rho": lambda: draw(st.sampled_from([0.0, 0.9])),
              "nesterov": lambda: bool(scalars.get("momentum")) and draw(st.booleans()),
              "into": lambda: Arr(np.zeros(1, np.int64)) if draw(st.booleans()) else None}
    if role in simple:
        return simple[role]()
    if role in BOOL_ROLES:
        return draw(st.booleans())
    return inspect.Parameter.empty   # unknown: its default, or an array like x


class OpCall:
    """A call of fastcnn.functional.<name> with keyword arguments (recipes for arrays)."""

    group = "functional"

    def __init__(self, name, args, cuda=False):
        self.name, self.args, self.cuda = name, args, cuda
        self.target = name

    def describe(self):
        return f"F.{self.name}(" + ", ".join(f"{k}={short(v)}" for k, v in self.args.items()) + ")"

    def run(self, backend, folder=None):
        """(what the op returned, every argument after the call: in-place results)."""
        kwargs = {k: build(v, backend == "cuda", folder) for k, v in self.args.items()}
        kwargs.setdefault("backend", backend)
        result = getattr(F, self.name)(**kwargs)
        return result, {k: _flat(v) for k, v in kwargs.items() if k != "backend"}


def _flat(a):
    """An argument after the call: its values, 1-D in native byte order (moved to the GPU,
    a 0-d array becomes 1-D and a big-endian one native)."""
    if hasattr(a, "copy_to_host"):
        a = a.copy_to_host()
    if isinstance(a, tuple):
        return tuple(_flat(v) for v in a)
    if not isinstance(a, np.ndarray):
        return a
    return np.array(a, dtype=a.dtype.newbyteorder("=")).reshape(-1)


REFUSED = object()


def _call_valid(name, args):
    """The reference's result for args, or REFUSED."""
    try:
        return OpCall(name, args).run("reference")[0]
    except Exception:   # noqa: B902 - any refusal: the case's own run judges it
        return REFUSED


def valid_call(draw, name, fwd_args=None):
    """Valid keyword arguments for op name: (args, the reference's result)."""
    params = parameters(getattr(F, name))
    fam = family(params)
    fwd = forward_of(name)
    for attempt in range(3):   # a few tries: some roles constrain each other
        g = geometry(draw, fam)
        if attempt:   # e.g. softmax takes (N, C) only
            g["shape"] = (g["shape"] + (2, 2))[:2]
        rng = np.random.default_rng(g["seed"])
        args, done = {}, {}
        if fwd is not None:
            fwd_args, fwd_result = valid_call(draw, fwd)
            named = OUTPUTS.get(fwd, ("y",))
            results = fwd_result if isinstance(fwd_result, tuple) else (fwd_result,)
            done = {r: Arr(np.asarray(v)) for r, v in zip(named, results)
                    if isinstance(v, np.ndarray)}
            done.update({k: v for k, v in fwd_args.items() if k not in done and k != "out"})
            y = done.get("y", done.get("cols"))
            if y is not None:
                done["dy"] = Arr(random_array(rng, y.shape, y.dtype))
                if "x" in fwd_args and isinstance(fwd_args["x"], Arr):
                    done["input_shape"] = tuple(fwd_args["x"].shape)
        ordered = sorted(params, key=lambda r: r in ARRAY_ROLES | INT_ARRAY_ROLES)
        for role in ordered:   # scalars first: arrays may depend on them
            if role in done:
                args[role] = done[role]
                continue
            if role == "out":
                continue
            value = valid(draw, role, fam, g, rng, args)
            if value is inspect.Parameter.empty:
                default = params[role]
                value = Arr(random_array(rng, _shape("x", fam, g), g["dtype"])) \
                    if default is inspect.Parameter.empty else default
            args[role] = value
        args = {k: args[k] for k in params if k in args}   # the signature's order
        result = _call_valid(name, args)
        if result is not REFUSED:
            break
    if "out" in params and result is not REFUSED and _specs(result) and \
            draw(st.integers(0, 3)) == 0:
        args["out"] = good_out(draw, _specs(result))
    return args, result


def _specs(result):
    if result is REFUSED:
        return []
    results = result if isinstance(result, tuple) else (result,)
    return [(v.shape, v.dtype) for v in results if isinstance(v, np.ndarray)]


def _kind(role, default):
    if role in ARRAY_ROLES:
        return "array"
    if role in INT_ARRAY_ROLES:
        return "int_array"
    if role in INT_ROLES:
        return "int"
    if role in BOOL_ROLES or isinstance(default, bool):
        return "bool"
    if role in ("out", "into"):
        return "out"
    if role == "input_shape":
        return "shape"
    if isinstance(default, int):
        return "int"
    return "float" if isinstance(default, float) else "array"


def mutate(draw, name, args, result, g_dtype):
    """Replace one argument by a bad or edge-case value of its kind."""
    params = parameters(getattr(F, name))
    outs = sorted({"out", "into"} & set(params))
    if outs and draw(st.integers(0, 3)) == 0:   # out= gets its share: many ways to be wrong
        role = outs[0]
    else:
        role = draw(st.sampled_from(sorted(set(params) - set(outs))))
    kind = _kind(role, params[role])
    value = args.get(role)
    if kind == "array":
        base = value if isinstance(value, Arr) else Arr(np.ones(3, g_dtype))
        args[role] = bad_array(draw, base, g_dtype)
    elif kind == "int_array":
        if not isinstance(value, Arr) or value.dtype.kind not in "iu":
            value = Arr(np.zeros(2, np.int64))
        high = int(np.max(value.values, initial=0)) + 1
        args[role] = bad_int_array(draw, value, high)
    elif kind == "int":
        first = value[0] if isinstance(value, (tuple, list)) and value else value
        odd = odd_int(first) if isinstance(first, int) and 0 <= first < 256 else bad_int()
        args[role] = draw(st.one_of(bad_int(), bad_int(), odd))
    elif kind == "float":
        args[role] = draw(bad_float())
    elif kind == "bool":
        args[role] = draw(bad_bool())
    elif kind == "shape":
        args[role] = draw(bad_shape(value if isinstance(value, tuple) else (2, 3, 4, 4)))
    elif role == "into":
        args[role] = bad_out(draw, [((1,), np.dtype(np.int64))])
    elif _specs(result):
        args[role] = bad_out(draw, _specs(result))
    return role


def _device_alike(v):
    """True for arguments that mean the same moved to the GPU (there, arrays are copies:
    read-only, memory-mapped or strided ones are not)."""
    if isinstance(v, tuple):
        return all(_device_alike(e) for e in v)
    if isinstance(v, Arr):   # (to_device also makes big-endian arrays native)
        return v.dtype.isnative and not (v.dtype == object or v.memmap or v.readonly or v.view)
    return isinstance(v, (int, float, type(None)))


def op_case(draw, name):
    """A fuzz case for op name: a valid call with 0, 1 or 2 arguments made bad."""
    args, result = valid_call(draw, name)
    dtype = next((v.dtype for v in args.values() if isinstance(v, Arr)), np.dtype(np.float32))
    changed = [mutate(draw, name, args, result, dtype)
               for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2])))]
    if draw(st.integers(0, 40)) == 0:
        args["backend"] = draw(st.sampled_from(["tpu", "CPU", 1, "", "reference"]))
    small = sum(v.values.size for v in args.values() if isinstance(v, Arr)) <= 2048
    arrays = ARRAY_ROLES | INT_ARRAY_ROLES   # cuda takes device arrays only (no lists)
    plain = all(_device_alike(v) and (k not in arrays or v is None or isinstance(v, Arr))
                for k, v in args.items())
    cuda = small and plain and "backend" not in args and draw(st.integers(1, CUDA_EVERY)) == 1
    case = OpCall(name, args, cuda)
    case.changed = changed
    return case
