"""Batch normalisation, training and inference, forward and backward."""

from .. import _args
from .._args import arg as _arg
from ._checks import _backend, _checked_out, _floats, _no_clash, _outs, _same_shape


# ---------------------------------------------------------------- batch normalisation


def _channels(op, name, a, x):
    """a must hold one value per channel of x (axis 1)."""
    if tuple(a.shape) != (x.shape[1],):
        raise ValueError(f"{op}: {name} must have shape ({x.shape[1]},) for x.shape="
                         f"{tuple(x.shape)}, got {tuple(a.shape)}")
    return a


def batch_norm(x, gamma, beta, running_mean=None, running_var=None, momentum=0.1, eps=1e-5,
               training=True, *, backend=None, out=None):
    """Normalise each channel (axis 1) of (N, C) or (N, C, H, W) -> (y, mean, invstd).

    Training uses the batch statistics and updates running_mean / running_var in
    place (if given); evaluation uses them.
    """
    op = "batch_norm"
    arrays = {"x": x, "gamma": gamma, "beta": beta,
              "running_mean": running_mean, "running_var": running_var}
    be = _backend(op, backend, arrays)
    x, gamma, beta = _floats(op, be, x=x, gamma=gamma, beta=beta)
    if x.ndim not in (2, 4):
        raise ValueError(f"{op}: x must be (N, C) or (N, C, H, W), got shape {tuple(x.shape)}")
    c = x.shape[1]
    for name, a in (("gamma", gamma), ("beta", beta)):
        _channels(op, name, a, x)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    training = _args.flag(op, "training", training)
    if not training and running_mean is None:
        raise ValueError(f"{op}: evaluation (training=False) needs running_mean and running_var")
    reads = {"x": x, "gamma": gamma, "beta": beta}
    stats = {"running_mean": running_mean, "running_var": running_var}
    if training and running_mean is not None:   # updated in place: checked like out=
        for name, a in stats.items():
            reads[name] = _checked_out(op, be, a, (c,), x.dtype, name)
        _no_clash(op, stats, {"x": x, "gamma": gamma, "beta": beta})
    elif running_mean is not None:              # only read
        _, *stats = _floats(op, be, x=x, **stats)
        for name, a in zip(("running_mean", "running_var"), stats):
            reads[name] = _channels(op, name, a, x)
    running_mean, running_var = reads.get("running_mean"), reads.get("running_var")
    if training and x.size // max(c, 1) < 2:
        raise ValueError(f"{op}: training needs more than one value per channel "
                         f"(x.shape={tuple(x.shape)})")
    momentum, eps = _arg(op, "momentum", momentum), _arg(op, "eps", eps)
    out = _outs(op, be, out, [(x.shape, x.dtype), ((c,), x.dtype), ((c,), x.dtype)], reads)
    return be.batch_norm(x, gamma, beta, running_mean, running_var, momentum, eps, training,
                         out=out)


def batch_norm_backward(dy, x, gamma, mean, invstd, training=True, *, backend=None, out=None):
    """Gradients of batch_norm from its saved mean and invstd: (dx, dgamma, dbeta)."""
    op = "batch_norm_backward"
    arrays = {"dy": dy, "x": x, "gamma": gamma, "mean": mean, "invstd": invstd}
    be = _backend(op, backend, arrays)
    dy, x, gamma, mean, invstd = _floats(op, be, **arrays)
    _same_shape(op, ("dy", "x"), (dy, x))
    if x.ndim not in (2, 4):
        raise ValueError(f"{op}: x must be (N, C) or (N, C, H, W), got shape {tuple(x.shape)}")
    c = x.shape[1]
    for name, a in (("gamma", gamma), ("mean", mean), ("invstd", invstd)):
        _channels(op, name, a, x)
    out = _outs(op, be, out, [(x.shape, x.dtype), ((c,), x.dtype), ((c,), x.dtype)],
                reads={"dy": dy, "x": x, "gamma": gamma, "mean": mean, "invstd": invstd})
    return be.batch_norm_backward(dy, x, gamma, mean, invstd,
                                  _args.flag(op, "training", training), out=out)
