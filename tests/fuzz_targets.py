"""Fuzz cases for the layers, losses and optimizers (enumerated: fastcnn.nn.LAYERS,
LOSSES, fastcnn.optim.OPTIMIZERS); fuzz_files.py has the DataLoader, the IDX reader
and the model loader.

A layer case builds the layer from constructor arguments named by its signature
(in_channels, kernel_size, p, ...; `CTOR` gives each a valid value), finds an input
layout it takes by trying the usual ones on the reference backend, then runs a short
script: forward, backward, a second forward (buffers are reused), eval mode, or
backward first. One constructor argument, x or dy may be made bad. Layers pick their
backend from where the data lives, so the reference run serves "cpu" with the
reference backend (`serving`), and the two runs' outputs, gradients and buffers are
compared.
"""

import inspect
from contextlib import contextmanager

import numpy as np
from hypothesis import strategies as st

import fastcnn.backends as backends
from fastcnn import nn, optim
from fastcnn import Sequential
from fuzz_values import FLOATS, Arr, bad_array, bad_bool, bad_float, bad_int, bad_int_array, \
    build, random_array, short


@contextmanager
def serving(backend):
    """Inside the block, NumPy arrays compute on `backend` (the reference or cpu)."""
    if backend == "cpu":
        yield
        return
    real = backends.get
    backends.get = lambda name: real(backend if name == "cpu" else name)
    try:
        yield
    finally:
        backends.get = real


def host(a):
    return a.copy_to_host() if hasattr(a, "copy_to_host") else (
        np.array(a) if isinstance(a, np.ndarray) else a)


# ---------------------------------------------------------------- layers

INT_ARGS = {"in_features", "out_features", "in_channels", "out_channels", "kernel_size",
            "stride", "padding", "dilation", "num_features", "pool_size", "groups",
            "output_padding", "output_size", "size", "divisor_override", "dim", "start_dim",
            "end_dim"}
FLOAT_ARGS = {"eps", "momentum", "negative_slope", "alpha", "p", "scale_factor"}


def _ctor_value(draw, name, g, default):
    values = {"in_features": g["c"], "out_features": g["k"], "in_channels": g["c"],
              "out_channels": g["k"], "num_features": g["c"], "kernel_size": g["kernel"],
              "stride": g["stride"], "padding": g["padding"], "dilation": 1,
              "scale_factor": draw(st.sampled_from([1, 2, 1.5, (2, 0.5)])),
              "pool_size": g["pool"], "groups": 1, "output_padding": 0,
              "output_size": draw(st.sampled_from([1, 2, (2, None)])), "size": None,
              "dim": draw(st.sampled_from([1, -1])), "start_dim": 1, "end_dim": -1,
              "unflattened_size": draw(st.sampled_from([(-1, 1), (1, -1)])),
              "ceil_mode": draw(st.booleans()), "count_include_pad": draw(st.booleans()),
              "divisor_override": None, "return_indices": False, "align_corners": None,
              "dtype": g["dtype"], "rng": g["seed"],
              "mode": draw(st.sampled_from(["nearest", "bilinear"])),
              "p": draw(st.sampled_from([0.0, 0.5])), "eps": 1e-5,
              "momentum": draw(st.sampled_from([0.1, 0.9])),
              "negative_slope": draw(st.floats(-1, 1)), "alpha": draw(st.floats(0, 2)),
              "bias": draw(st.booleans()), "affine": draw(st.booleans())}
    if name == "stride" and default is None and draw(st.booleans()):
        return None
    return values.get(name, default)


def _bad_ctor_value(draw, name):
    if name in INT_ARGS:
        return draw(bad_int())
    if name in FLOAT_ARGS:
        return draw(bad_float())
    if name == "dtype":
        return draw(st.sampled_from([np.int32, "float16", np.float16, None, object, "x",
                                     np.complex64, "float64", np.dtype(">f4")]))
    if name == "rng":
        return draw(st.sampled_from(["x", -1, 1.5, object(), None, 2**70, [1, 2]]))
    if name == "mode":
        return draw(st.sampled_from(["bicubic", None, 1, "NEAREST"]))
    return draw(bad_bool())


def _inputs(cls, params, g):
    """Candidate input shapes, the likeliest first, from what the constructor asks."""
    n, c, (h, w) = g["n"], g["c"], g["hw"]
    if "in_features" in params:
        return [(n, c)]
    if {"in_channels", "kernel_size", "scale_factor", "output_size"} & set(params):
        return [(n, c, h, w), (n, c, w)]
    if "pool_size" in params:
        c = c * g["pool"]
    return [(n, c), (n, c, h, w), (n, c, h)]


class LayerCase:
    group = "layers"

    def __init__(self, name, ctor, script):
        self.target, self.ctor, self.script = name, ctor, script

    def describe(self):
        ctor = ", ".join(f"{k}={short(v)}" for k, v in self.ctor.items())
        steps = "; ".join(f"{s}({short(v)})" if v is not None or s in ("forward", "backward")
                          else f"{s}()" for s, v in self.script)
        return f"nn.{self.target}({ctor}): {steps}"

    def run(self, backend, folder=None):
        with serving(backend):
            layer = nn.LAYERS[self.target](**build(self.ctor))
            seen = []
            for step, value in self.script:
                if step == "eval":
                    layer.eval()
                elif step == "forward":
                    seen.append(host(layer.forward(build(value, folder=folder))))
                else:
                    seen.append(host(layer.backward(build(value, folder=folder))))
            return seen, {k: {n: host(a) for n, a in getattr(layer, k).items()}
                          for k in ("params", "grads", "buffers")}


def layer_case(draw, name):
    from fuzz_cases import geometry
    cls = nn.LAYERS[name]
    params = {p.name: p.default for p in inspect.signature(cls).parameters.values()}
    g = geometry(draw, "pool")
    rng = np.random.default_rng(g["seed"])
    ctor = {k: _ctor_value(draw, k, g, d) for k, d in params.items()   # rng: the runs' weights
            if d is inspect.Parameter.empty or k == "rng" or draw(st.booleans())}   # and masks
    dtype = np.dtype(ctor.get("dtype", g["dtype"]))
    x = y = None
    for shape in _inputs(cls, params, g):   # the first layout the layer takes
        x = Arr(random_array(rng, shape, dtype))
        try:
            y = LayerCase(name, ctor, [("forward", x)]).run("reference")[0][0]
            break
        except Exception:   # noqa: B902 - any refusal: the case's own run judges it
            continue
    dy = Arr(random_array(rng, y.shape, y.dtype)) if isinstance(y, np.ndarray) else x
    x2 = x.like(random_array(rng, x.shape, x.dtype))
    script = draw(st.sampled_from([
        [("forward", x), ("backward", dy)], [("forward", x), ("forward", x2), ("backward", dy)],
        [("eval", None), ("forward", x), ("backward", dy)], [("backward", dy)],
        [("forward", x), ("backward", dy), ("backward", dy)]]))
    what = draw(st.sampled_from(["none", "ctor", "ctor", "x", "x", "dy", "dy"]))
    if what == "ctor" and ctor:
        key = draw(st.sampled_from(sorted(ctor)))
        ctor[key] = _bad_ctor_value(draw, key)
    elif what in ("x", "dy"):
        step = "forward" if what == "x" else "backward"
        i = next((i for i, (s, _) in enumerate(script) if s == step), None)
        if i is not None:
            script[i] = (step, bad_array(draw, script[i][1], dtype))
    case = LayerCase(name, ctor, script)
    case.compare = ctor.get("rng", 0) is not None   # else each run draws its own weights
    return case


# ---------------------------------------------------------------- losses


class LossCase:
    group = "losses"

    def __init__(self, name, pred, target, script):
        self.target, self.pred, self.labels, self.script = name, pred, target, script

    def describe(self):
        return (f"nn.{self.target}()(pred={short(self.pred)}, target={short(self.labels)}): "
                + ", ".join(self.script))

    def run(self, backend, folder=None):
        with serving(backend):
            loss = nn.LOSSES[self.target]()
            seen = []
            for step in self.script:
                if step == "forward":
                    seen.append(loss.forward(build(self.pred, folder=folder),
                                             build(self.labels, folder=folder)))
                elif step == "backward":
                    seen.append(host(loss.backward()))
                else:
                    seen.append(loss.correct(build(self.pred), build(self.labels)))
            return seen


def loss_case(draw, name):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = np.dtype(draw(st.sampled_from(FLOATS)))
    n, classes = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    shape = (n, classes) if draw(st.booleans()) else (n, classes, 2)
    pred = target = None
    for labels in (True, False):   # class labels, or targets of the predictions' shape
        pred = Arr(random_array(rng, (n, classes) if labels else shape, dtype, 0.01, 0.99))
        target = Arr(rng.integers(0, classes, n)) if labels else Arr(
            random_array(rng, shape, dtype, 0, 1))
        try:
            LossCase(name, pred, target, ["forward"]).run("reference")
            break
        except Exception:   # noqa: B902 - as for the layers
            continue
    script = draw(st.sampled_from([["forward", "backward"], ["forward", "backward", "correct"],
                                   ["backward"], ["forward", "forward", "backward"]]))
    what = draw(st.sampled_from(["none", "pred", "pred", "target", "target"]))
    if what == "pred":
        pred = bad_array(draw, pred, dtype)
    elif what == "target":
        target = bad_int_array(draw, target, classes) if target.dtype.kind in "iu" else \
            bad_array(draw, target, dtype)
    return LossCase(name, pred, target, script)


# ---------------------------------------------------------------- optimizers

OPTIMIZER_ARGS = {"lr": [0.0, 0.01, 0.5], "momentum": [0.0, 0.9], "weight_decay": [0.0, 0.1],
                  "eps": [1e-8, 1e-3], "lr_decay": [0.0, 0.1], "alpha": [0.5, 0.99],
                  "rho": [0.5, 0.9], "betas": [(0.9, 0.999), (0.0, 0.5)]}


class OptimizerCase:
    group = "optimizers"

    def __init__(self, name, ctor, handles, grads, steps, dtype, seed):
        self.target, self.ctor, self.handles, self.grads = name, ctor, handles, grads
        self.steps, self.dtype, self.seed = steps, dtype, seed

    def describe(self):
        ctor = ", ".join(f"{k}={short(v)}" for k, v in self.ctor.items())
        grads = ", ".join(f"{k}={short(v)}" for k, v in self.grads.items())
        return (f"optim.{self.target}({self.handles}, {ctor}) on Linear(3, 2)+BatchNorm1d(2) "
                f"{np.dtype(self.dtype).name}, grads {grads}: {self.steps} steps")

    def run(self, backend, folder=None):
        with serving(backend):
            model = Sequential(nn.Linear(3, 2, dtype=self.dtype, rng=self.seed),
                               nn.BatchNorm1d(2, dtype=self.dtype))
            for key, grad in self.grads.items():
                i, name = key.split(".")
                model[int(i)].grads[name] = build(grad, folder=folder)
            params = {"model": model, "parameters": model.parameters(),
                      "iterator": iter(model.parameters()), "layer": optim.parameters(model[0]),
                      "empty": [], "arrays": [model[0].params["weight"]], "None": None,
                      "int": 5, "dict": {"w": model[0].params["weight"]}}[self.handles]
            opt = optim.OPTIMIZERS[self.target](params, **build(self.ctor))
            for step in range(self.steps):
                if step == 1 and self.steps == 3:   # zero_grad swaps in new gradient arrays
                    opt.zero_grad()
                opt.step()
            return [{k: host(v) for k, v in layer.params.items()} for layer in model], [
                None if s is None else {k: host(v) for k, v in s.items()} for s in opt.state]


def optimizer_case(draw, name):
    cls = optim.OPTIMIZERS[name]
    params = {p.name: p.default for p in inspect.signature(cls).parameters.values()
              if p.name != "params"}
    ctor = {k: draw(st.sampled_from(OPTIMIZER_ARGS.get(k, [d]))) for k, d in params.items()
            if draw(st.booleans())}
    if ctor.get("nesterov") is None and "nesterov" in params and ctor.get("momentum"):
        ctor["nesterov"] = draw(st.booleans())
    dtype = np.dtype(draw(st.sampled_from(FLOATS)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shapes = {"0.weight": (2, 3), "0.bias": (2,), "1.weight": (2,), "1.bias": (2,)}
    grads = {k: Arr(random_array(rng, s, dtype)) for k, s in shapes.items()}
    handles = "model"
    what = draw(st.sampled_from(["none", "ctor", "ctor", "ctor", "grad", "grad", "handles"]))
    if what == "ctor" and params:
        key = draw(st.sampled_from(sorted(params)))
        ctor[key] = draw(st.one_of(bad_float(), st.sampled_from(
            [(0.9,), (1.5, 0.9), "ab", (0.9, None), 0.9, (-0.1, 0.5), (0.9, 1.0)]))
            if key == "betas" else bad_bool() if key == "nesterov" else bad_float())
    elif what == "grad":
        key = draw(st.sampled_from(sorted(grads)))
        grads[key] = bad_array(draw, grads[key], dtype)
    elif what == "handles":
        handles = draw(st.sampled_from(["parameters", "iterator", "layer", "empty", "arrays",
                                        "None", "int", "dict"]))
    return OptimizerCase(name, ctor, handles, grads, draw(st.integers(1, 3)), dtype, seed)


def _cases():
    from fuzz_files import idx_case, loader_case, model_case
    from fuzz_onnx import cases
    return {"layers": layer_case, "losses": loss_case, "optimizers": optimizer_case,
            "dataloader": loader_case, "read_idx": idx_case, "model_load": model_case,
            **cases()}


CASES = _cases()
TARGETS = {"layers": sorted(nn.LAYERS), "losses": sorted(nn.LOSSES),
           "optimizers": sorted(optim.OPTIMIZERS), "dataloader": ["DataLoader"],
           "read_idx": ["read_idx"], "model_load": ["load"],
           **{group: ["load"] for group in ("onnx_load", "safetensors_load") if group in CASES}}
