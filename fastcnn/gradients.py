"""fastcnn.gradcheck: prove a backward pass right with finite differences, as fastcnn's
tests do.

    from fastcnn import gradcheck
    gradcheck(MyLayer(3, dtype=np.float64), x)       # dx and every parameter's gradient
    gradcheck(model, x)                              # a whole Sequential or graph
    gradcheck((my_op, my_op_backward), x, w)         # an op and its backward(dy, x, w)

For a random direction v and a random output weighting u, the derivative of <u, f(x)>
along v, by float64 central differences (f(x + eps v) - f(x - eps v)) / 2 eps, must
equal <backward(u), v>, the analytic gradient's; a few directions per argument. Each
argument (every input, and every parameter of a layer or model) is checked alone, so
a wrong gradient is named. A layer or model must be float64 (dtype=np.float64), its
forward deterministic (Dropout in eval mode). Frozen layers are not checked (they have
no gradients).
"""

import numpy as np

from . import backends

EPS = 1e-6


class GradcheckError(AssertionError):
    """An analytic gradient that the finite differences do not confirm."""


def gradcheck(f, *inputs, directions=3, eps=EPS, tol=1e-6, seed=0):
    """Check the gradients of f at inputs; True, or a GradcheckError naming the argument.

    f: a layer or a model (its input gradients and every parameter's gradient are
    checked; a fan-in layer such as Add takes the inputs as its list), or a pair
    (forward, backward): forward(*inputs) -> an array, backward(dy, *inputs) -> the
    gradient of each input (one array, or a tuple with one per input).
    The check passes when |numeric - analytic| <= tol * max(1, |numeric|)."""
    rng = np.random.default_rng(seed)
    inputs = [np.array(backends.to_host(x), dtype=np.float64) for x in inputs]
    if not inputs:
        raise TypeError("gradcheck: needs at least one input")
    forward, backward, arguments = _adapt(f, inputs)
    y = np.array(forward(inputs), dtype=np.float64)
    u = rng.standard_normal(y.shape)
    analytic = backward(u, inputs)          # {argument name: its gradient}
    for name, (value, restore) in arguments.items():
        grad = analytic[name]
        if grad is None:
            raise GradcheckError(f"gradcheck: no gradient for {name}")
        grad = np.asarray(backends.to_host(grad), dtype=np.float64)
        if grad.shape != value.shape:
            raise GradcheckError(f"gradcheck: the gradient of {name} has shape {grad.shape}, "
                                 f"{name} has {value.shape}")
        original = value.copy()
        for _ in range(directions):
            v = rng.standard_normal(value.shape)
            sides = []
            for sign in (1, -1):
                value[...] = original + sign * eps * v
                restore()
                sides.append(float(np.vdot(u, np.asarray(forward(inputs), np.float64))))
            value[...] = original
            restore()
            numeric = (sides[0] - sides[1]) / (2 * eps)
            exact = float(np.vdot(grad, v))
            if not abs(numeric - exact) <= tol * max(1.0, abs(numeric)):
                raise GradcheckError(f"gradcheck: the gradient of {name} is off: along a random "
                                     f"direction, finite differences give {numeric:.10g}, "
                                     f"backward gives {exact:.10g}")
    return True


def _adapt(f, inputs):
    """(forward(inputs) -> host array, backward(u, inputs) -> {name: gradient}, and the
    arguments to perturb: {name: (float64 host array, restore)}), restore() putting the
    perturbed array back where f reads it."""
    arguments = {f"input {i}": (x, _nothing) for i, x in enumerate(inputs)}
    if isinstance(f, tuple) and len(f) == 2 and all(callable(g) for g in f):
        op, op_backward = f

        def backward(u, xs):
            grads = op_backward(u, *xs)
            grads = grads if isinstance(grads, (tuple, list)) else (grads,)
            return {f"input {i}": g for i, g in enumerate(grads)}
        return (lambda xs: backends.to_host(op(*xs))), backward, arguments
    if not (hasattr(f, "forward") and hasattr(f, "backward")):
        raise TypeError(f"gradcheck: expects a layer, a model or a pair (forward, backward), "
                        f"got {type(f).__name__}")
    layers = getattr(f, "layers", [f])
    for layer in layers:
        for key, p in layer.params.items():
            if np.dtype(p.dtype) != np.float64:
                raise TypeError(f"gradcheck: {layer!r} has {p.dtype} parameters; build it "
                                f"with dtype=np.float64 (finite differences need float64)")
    named = list(f.named_layers()) if hasattr(f, "named_layers") else [(type(f).__name__, f)]
    named = [(path, layer) for path, layer in named if layer.trainable]
    for path, layer in named:
        for key in layer.params:
            arguments[f"{path}.{key}"] = _parameter(layer, key)
    fan_in = getattr(f, "fan_in", False)
    on_gpu = any(backends.on_gpu(p) for layer in layers for p in layer.params.values())
    place = backends.to_device if on_gpu else (lambda a: a)

    def forward(xs):
        xs = [place(x) for x in xs]
        return backends.to_host(f.forward(xs) if fan_in else f.forward(*xs))

    def backward(u, xs):
        forward(xs)
        dxs = f.backward(place(u))
        dxs = list(dxs) if isinstance(dxs, (tuple, list)) else [dxs]
        grads = {f"input {i}": dx for i, dx in enumerate(dxs)}
        for path, layer in named:
            for key, g in layer.grads.items():
                grads[f"{path}.{key}"] = np.array(backends.to_host(g))
        return grads
    return forward, backward, arguments


def _nothing():
    pass


def _parameter(layer, key):
    """A parameter as a host float64 array to perturb, and how to put it back into the
    layer (a copy to the GPU for a layer there)."""
    held = layer.params[key]
    if not backends.on_gpu(held):
        return held, _nothing
    host = np.array(backends.to_host(held))

    def restore():
        layer.params[key] = backends.to_device(host)
    return host, restore
