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
    layer), or the model itself; lr and the other hyperparameters (by name), checked and
    kept as attributes."""

    state_names = ()

    def __init__(self, params, lr, **hyperparameters):
        where = type(self).__name__
        if hasattr(params, "parameters"):
            params = params.parameters()
        try:
            self.params = list(params)
        except TypeError:   # not iterable
            self.params = [params]
        if not all(isinstance(p, Parameter) for p in self.params):
            raise TypeError(f"{where}: params must be Parameter handles, as model.parameters() "
                            f"returns them, got {type(params).__name__}")
        if not self.params:
            raise ValueError(f"{where}: params is empty: there is nothing to optimise (a model "
                             f"without parameters?)")
        if len({(id(p.layer), p.key) for p in self.params}) < len(self.params):
            raise ValueError(f"{where}: a parameter appears twice in params (it would be "
                             f"updated twice a step)")
        for name, value in dict(lr=lr, **hyperparameters).items():
            setattr(self, name, _args.hyperparameter(where, name, value))
        self.steps = 0
        self.state = [None] * len(self.params)   # per parameter: its state arrays, by name

    def zero_grad(self):
        """Zero every gradient (backward overwrites them, so this matters only for a layer
        that a backward pass did not reach): new arrays like the parameters (whatever was
        put in grads, a gradient has its parameter's shape, dtype and device)."""
        for p in self.params:
            p.layer.grads[p.key] = backends.zeros_like(p.data)

    def step(self):
        """One update of every parameter from its current gradient."""
        self.steps += 1
        for i, p in enumerate(self.params):
            if self.state[i] is None:
                self.state[i] = {n: backends.zeros_like(p.data) for n in self._state_for()}
            self._update(p.data, p.grad, self.state[i])

    def _state_for(self):
        return self.state_names

    def to(self, device):
        """Move the state arrays to "cpu" or "cuda" (model.to does it for its optimizer)."""
        move = backends.mover(device)
        self.state = [None if s is None else {k: move(v) for k, v in s.items()}
                      for s in self.state]
        return self

    def _update(self, param, grad, state):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                         if k not in ("params", "state", "steps"))
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """v = momentum v + g; p -= lr (g + momentum v if nesterov else v); g includes the
    weight_decay term. Without momentum, plain p -= lr g."""

    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr, momentum=momentum, weight_decay=weight_decay)
        self.nesterov = _args.nesterov("SGD", nesterov, self.momentum)

    def _state_for(self):
        return ("velocity",) if self.momentum else ()

    def _update(self, param, grad, state):
        F.sgd_step(param, grad, state.get("velocity"), self.lr, self.momentum, self.nesterov,
                   self.weight_decay)


class Adam(Optimizer):
    """Adam (Kingma & Ba), bias-corrected moments; weight_decay is the L2 term."""

    state_names = ("m", "v")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, eps=eps, weight_decay=weight_decay)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = tuple(_args.hyperparameter("Adam", name, beta)
                           for name, beta in zip(("beta1", "beta2"), betas))

    def _update(self, param, grad, state):
        F.adam_step(param, grad, state["m"], state["v"], self.steps, self.lr, *self.betas,
                    self.eps, self.weight_decay)


class Adagrad(Optimizer):
    """p -= lr / (1 + (t-1) lr_decay) * g / (sqrt(sum of g^2) + eps)."""

    state_names = ("sum_sq",)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, eps=1e-10, weight_decay=0.0):
        super().__init__(params, lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay)

    def _update(self, param, grad, state):
        F.adagrad_step(param, grad, state["sum_sq"], self.steps, self.lr, self.lr_decay,
                       self.eps, self.weight_decay)


class RMSprop(Optimizer):
    """s = alpha s + (1 - alpha) g^2; p -= lr g / (sqrt(s) + eps), with optional momentum."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0):
        super().__init__(params, lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum)

    def _state_for(self):
        return ("square_avg", "buf") if self.momentum else ("square_avg",)

    def _update(self, param, grad, state):
        F.rmsprop_step(param, grad, state["square_avg"], state.get("buf"), self.lr, self.alpha,
                       self.eps, self.weight_decay, self.momentum)


class Adadelta(Optimizer):
    """Adadelta (Zeiler): steps scaled by the ratio of running RMS of updates and gradients."""

    state_names = ("square_avg", "acc_delta")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        super().__init__(params, lr, rho=rho, eps=eps, weight_decay=weight_decay)

    def _update(self, param, grad, state):
        F.adadelta_step(param, grad, state["square_avg"], state["acc_delta"], self.lr, self.rho,
                        self.eps, self.weight_decay)


OPTIMIZERS = {cls.__name__: cls for cls in (SGD, Adam, Adagrad, RMSprop, Adadelta)}
