"""Optimizers: PyTorch's update rules, each step one in-place call to a fastcnn.functional op.

An optimizer holds Parameter handles (a layer and a parameter name), so it
always updates the array the layer currently holds, wherever it lives, and its
per-parameter state (momentum, moment estimates) next to it.

The constructors check the hyperparameters against the ranges the step ops check
them against (``fastcnn._args.HYPERPARAMETERS``), so a bad one is refused when the
optimizer is built, not at its first step.
"""

from . import _args, backends
from . import functional as F


class Parameter:
    """A handle on layer.params[name] and its gradient layer.grads[name]."""

    __slots__ = ("layer", "key")

    def __init__(self, layer, key):
        self.layer, self.key = layer, key

    @property
    def data(self):
        return self.layer.params[self.key]

    @property
    def grad(self):
        return self.layer.grads[self.key]

    def __repr__(self):
        return f"Parameter({self.layer.name}.{self.key}, shape={tuple(self.data.shape)})"


def parameters(layer):
    """The Parameter handles of one layer."""
    return [Parameter(layer, k) for k in layer.params]


class Optimizer:
    """params: Parameter handles (model.parameters(), or parameters(layer) for one
    layer), or the model itself; or a list of parameter groups, PyTorch's form, each a
    dict {"params": handles, "lr": ..., ...} whose hyperparameters override the
    constructor's for its parameters:

        Adam([{"params": base.parameters(), "lr": 1e-4}, {"params": head.parameters()}],
             lr=1e-3)

    A frozen layer's parameters are skipped (not updated, their state left alone) until
    it is unfrozen. Each parameter counts its own steps (Adam's bias correction)."""

    state_names = ()

    def __init__(self, params, lr, **hyperparameters):
        where = type(self).__name__
        self.defaults = _checked(where, {"lr": lr, **hyperparameters})
        for name, value in self.defaults.items():
            if name != "lr":
                setattr(self, name, value)
        self.param_groups = [self._group(where, g) for g in _groups(where, params)]
        self.params = [p for g in self.param_groups for p in g["params"]]
        if not self.params:
            raise ValueError(f"{where}: params is empty: there is nothing to optimise (a model "
                             f"without parameters?)")
        if len({(id(p.layer), p.key) for p in self.params}) < len(self.params):
            raise ValueError(f"{where}: a parameter appears twice in params (it would be "
                             f"updated twice a step)")
        self.steps = 0
        self.state = [None] * len(self.params)   # per parameter: its state arrays, by name
        self.param_steps = [0] * len(self.params)

    def _group(self, where, group):
        unknown = set(group) - {"params"} - set(self.defaults)
        if unknown:
            raise TypeError(f"{where}: a parameter group sets {sorted(unknown)}, which is not "
                            f"a hyperparameter of {where} ({', '.join(self.defaults)})")
        handles = group["params"]
        if hasattr(handles, "parameters"):
            handles = handles.parameters()
        handles = list(handles)
        wrong = [p for p in handles if not isinstance(p, Parameter)]
        if wrong:
            raise TypeError(f"{where}: params must be Parameter handles, as "
                            f"model.parameters() returns them, got {type(wrong[0]).__name__}")
        overrides = _checked(where, {k: v for k, v in group.items() if k != "params"},
                             self.defaults)
        return {**self.defaults, **overrides, "params": handles}

    @property
    def lr(self):
        """The first group's learning rate. Setting it sets every group's, keeping their
        ratios to the first group's (so a schedule scales them all alike)."""
        return self.param_groups[0]["lr"] if self.param_groups else self.defaults["lr"]

    @lr.setter
    def lr(self, value):
        old = self.lr
        for group in getattr(self, "param_groups", ()):
            group["lr"] = value if not old else group["lr"] * (value / old)
        self.defaults["lr"] = value

    def zero_grad(self):
        """Zero every gradient (backward overwrites them, so this matters only for a layer
        that a backward pass did not reach): new arrays like the parameters (whatever was
        put in grads, a gradient has its parameter's shape, dtype and device)."""
        for p in self.params:
            p.layer.grads[p.key] = backends.zeros_like(p.data)

    def step(self):
        """One update of every parameter that trains, from its current gradient."""
        self.steps += 1
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.layer.trainable:
                    if self.state[i] is None:
                        self.state[i] = {n: backends.zeros_like(p.data)
                                         for n in self._state_for(group)}
                    self.param_steps[i] += 1
                    self._update(p.data, p.grad, self.state[i], group, self.param_steps[i])
                i += 1

    def _state_for(self, group):
        return self.state_names

    def to(self, device):
        """Move the state arrays to "cpu" or "cuda" (model.to does it for its optimizer)."""
        move = backends.mover(device)
        self.state = [None if s is None else {k: move(v) for k, v in s.items()}
                      for s in self.state]
        return self

    def _update(self, param, grad, state, group, step):
        """Update param from grad with the group's hyperparameters; step: how many updates
        this parameter has had, this one included."""
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        groups = f", {len(self.param_groups)} parameter groups" \
            if len(self.param_groups) > 1 else ""
        return f"{type(self).__name__}({args}{groups})"


def _checked(where, hyperparameters, defaults=None):
    """Hyperparameters checked against their ranges (betas as a pair, nesterov a flag that
    needs momentum; defaults: the values a group's missing ones come from)."""
    checked = {}
    for name, value in hyperparameters.items():
        if name == "betas":
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise TypeError(f"{where}: betas must be a pair (beta1, beta2), got {value!r}")
            value = tuple(_args.hyperparameter(where, b, v)
                          for b, v in zip(("beta1", "beta2"), value))
        elif name == "nesterov":
            momentum = hyperparameters.get("momentum", (defaults or {}).get("momentum", 0))
            value = _args.nesterov(where, value, momentum)
        elif name in _args.HYPERPARAMETERS:
            value = _args.hyperparameter(where, name, value)
        checked[name] = value
    return checked


def _groups(where, params):
    """The parameter groups params gives: a list of dicts, or one group of handles."""
    if hasattr(params, "parameters"):
        params = params.parameters()
    try:
        params = list(params)
    except TypeError:   # not iterable: one handle, or something else (refused by _group)
        params = [params]
    if params and all(isinstance(g, dict) for g in params):
        for g in params:
            if "params" not in g:
                raise TypeError(f"{where}: a parameter group has no 'params'")
        return params
    return [{"params": params}]


class SGD(Optimizer):
    """v = momentum v + g; p -= lr (g + momentum v if nesterov else v); g includes the
    weight_decay term. Without momentum, plain p -= lr g."""

    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay)

    def _state_for(self, group):
        return ("velocity",) if group["momentum"] else ()

    def _update(self, param, grad, state, group, step):
        F.sgd_step(param, grad, state.get("velocity"), group["lr"], group["momentum"],
                   group["nesterov"], group["weight_decay"])


class Adam(Optimizer):
    """Adam (Kingma & Ba), bias-corrected moments; weight_decay is the L2 term."""

    state_names = ("m", "v")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _update(self, param, grad, state, group, step):
        F.adam_step(param, grad, state["m"], state["v"], step, group["lr"], *group["betas"],
                    group["eps"], group["weight_decay"])


class Adagrad(Optimizer):
    """p -= lr / (1 + (t-1) lr_decay) * g / (sqrt(sum of g^2) + eps)."""

    state_names = ("sum_sq",)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, eps=1e-10, weight_decay=0.0):
        super().__init__(params, lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay)

    def _update(self, param, grad, state, group, step):
        F.adagrad_step(param, grad, state["sum_sq"], step, group["lr"], group["lr_decay"],
                       group["eps"], group["weight_decay"])


class RMSprop(Optimizer):
    """s = alpha s + (1 - alpha) g^2; p -= lr g / (sqrt(s) + eps), with optional momentum."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0):
        super().__init__(params, lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum)

    def _state_for(self, group):
        return ("square_avg", "buf") if group["momentum"] else ("square_avg",)

    def _update(self, param, grad, state, group, step):
        F.rmsprop_step(param, grad, state["square_avg"], state.get("buf"), group["lr"],
                       group["alpha"], group["eps"], group["weight_decay"], group["momentum"])


class Adadelta(Optimizer):
    """Adadelta (Zeiler): steps scaled by the ratio of running RMS of updates and gradients."""

    state_names = ("square_avg", "acc_delta")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        super().__init__(params, lr, rho=rho, eps=eps, weight_decay=weight_decay)

    def _update(self, param, grad, state, group, step):
        F.adadelta_step(param, grad, state["square_avg"], state["acc_delta"], group["lr"],
                        group["rho"], group["eps"], group["weight_decay"])


OPTIMIZERS = {cls.__name__: cls for cls in (SGD, Adam, Adagrad, RMSprop, Adadelta)}
