"""The optimizer steps (SGD, Adam, Adagrad, RMSprop, Adadelta), updating in place."""

from .. import _args
from .._args import integer as _int
from ._checks import FLOAT_DTYPES, _backend, _checked_out, _dtype, _floats, _no_clash


# ---------------------------------------------------------------- optimizer steps
# In-place updates of a parameter and its state arrays (PyTorch's formulas).


def _step_arrays(op, backend, param, grad, optional=(), **state):
    """param and the state arrays are updated in place, so each is checked like an out=
    array of param's shape and float dtype, sharing memory with no other; grad is read.
    Only the state arrays named in optional may be None."""
    be = _backend(op, backend, {"param": param, "grad": grad, **state})
    if not be.is_array(param) or _dtype(param) not in FLOAT_DTYPES:
        got = getattr(param, "dtype", type(param).__name__)
        raise TypeError(f"{op}: param is updated in place, so it must be a float32 or float64 "
                        f"array on {be.DEVICE}, got {got}")
    shape, dtype = tuple(param.shape), _dtype(param)
    (grad,) = _floats(op, be, grad=grad)
    if tuple(grad.shape) != shape or grad.dtype != dtype:
        raise ValueError(f"{op}: grad must have param's shape {shape} and dtype {dtype}, got "
                         f"shape {tuple(grad.shape)} and dtype {grad.dtype}")
    written = {"param": param, **state}
    for name, a in written.items():
        if a is None and name not in optional:
            raise TypeError(f"{op}: {name} is updated in place, so it must be an array, got None")
        if a is not None:
            _checked_out(op, be, a, shape, dtype, name)
    _no_clash(op, written, {"grad": grad})
    return be, grad


def _hyper(op, name, value):
    return _args.hyperparameter(op, name, value)


def sgd_step(param, grad, velocity=None, lr=0.01, momentum=0.0, nesterov=False,
             weight_decay=0.0, *, backend=None):
    op = "sgd_step"
    momentum = _hyper(op, "momentum", momentum)
    if momentum and velocity is None:
        raise ValueError(f"{op}: momentum={momentum} needs a velocity array")
    nesterov = _args.nesterov(op, nesterov, momentum)
    be, grad = _step_arrays(op, backend, param, grad, ("velocity",), velocity=velocity)
    be.sgd_step(param, grad, velocity, _hyper(op, "lr", lr), momentum, nesterov,
                _hyper(op, "weight_decay", weight_decay))


def adam_step(param, grad, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, *, backend=None):
    op = "adam_step"
    be, grad = _step_arrays(op, backend, param, grad, m=m, v=v)
    be.adam_step(param, grad, m, v, _int(op, "step", step, 1), _hyper(op, "lr", lr),
                 _hyper(op, "beta1", beta1), _hyper(op, "beta2", beta2), _hyper(op, "eps", eps),
                 _hyper(op, "weight_decay", weight_decay))


def adagrad_step(param, grad, sum_sq, step, lr=1e-2, lr_decay=0.0, eps=1e-10,
                 weight_decay=0.0, *, backend=None):
    op = "adagrad_step"
    be, grad = _step_arrays(op, backend, param, grad, sum_sq=sum_sq)
    be.adagrad_step(param, grad, sum_sq, _int(op, "step", step, 1), _hyper(op, "lr", lr),
                    _hyper(op, "lr_decay", lr_decay), _hyper(op, "eps", eps),
                    _hyper(op, "weight_decay", weight_decay))


def rmsprop_step(param, grad, square_avg, buf=None, lr=1e-2, alpha=0.99, eps=1e-8,
                 weight_decay=0.0, momentum=0.0, *, backend=None):
    op = "rmsprop_step"
    momentum = _hyper(op, "momentum", momentum)
    if momentum and buf is None:
        raise ValueError(f"{op}: momentum={momentum} needs a buf array")
    be, grad = _step_arrays(op, backend, param, grad, ("buf",), square_avg=square_avg, buf=buf)
    be.rmsprop_step(param, grad, square_avg, buf, _hyper(op, "lr", lr), _hyper(op, "alpha", alpha),
                    _hyper(op, "eps", eps), _hyper(op, "weight_decay", weight_decay), momentum)


def adadelta_step(param, grad, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6,
                  weight_decay=0.0, *, backend=None):
    op = "adadelta_step"
    be, grad = _step_arrays(op, backend, param, grad, square_avg=square_avg,
                            acc_delta=acc_delta)
    be.adadelta_step(param, grad, square_avg, acc_delta, _hyper(op, "lr", lr),
                     _hyper(op, "rho", rho), _hyper(op, "eps", eps),
                     _hyper(op, "weight_decay", weight_decay))
