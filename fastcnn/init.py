"""Parameter initialisation, PyTorch's formulas, seedable.

Each function fills a NumPy array in place and returns it. The random ones
draw from ``rng`` (a ``numpy.random.Generator`` or an int seed); without one
they draw from the module's generator, which ``fastcnn.init.seed(n)`` resets,
so ``seed(0)`` before building a model makes its initial weights reproducible.
Initialise on the host, then move the model with ``model.to("cuda")``.
"""

import math

import numpy as np

from . import _args

_default = np.random.default_rng()


def seed(n):
    """Reset the generator the layers draw from when given no rng."""
    global _default
    _default = np.random.default_rng(_args.integer("seed", "n", n, 0, None))


def generator(rng=None, where="init"):
    """rng as a Generator: a Generator as it is, an int as a seed, None as the module's one.
    where: who asks, for the error message."""
    if rng is None:
        return _default
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (np.random.SeedSequence, np.random.BitGenerator)):
        return np.random.default_rng(rng)
    if isinstance(rng, (bool, np.bool_)) or not isinstance(rng, (int, np.integer)):
        raise TypeError(f"{where}: rng must be a numpy Generator, an int seed or None, "
                        f"got {rng!r}")
    return np.random.default_rng(_args.integer(where, "rng", rng, 0, None))


def fans(shape):
    """(fan_in, fan_out) of a weight shaped (out, in, *kernel), as PyTorch computes them;
    both must be positive (an empty weight has no scale to draw from)."""
    if len(shape) < 2:
        raise ValueError(f"fan_in and fan_out need a weight of at least 2 dimensions, "
                         f"got shape {tuple(shape)}")
    receptive = math.prod(shape[2:])
    if shape[0] * shape[1] * receptive == 0:
        raise ValueError(f"fan_in and fan_out of a weight of shape {tuple(shape)} are 0: "
                         f"an empty weight has nothing to initialise")
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    """The standard deviation gain of a nonlinearity (PyTorch's table)."""
    if nonlinearity in ("linear", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def _host(a, name):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: initialise NumPy arrays on the host (then move the model "
                        f"with model.to('cuda')), got {type(a).__name__}")
    if a.dtype.kind != "f":   # an int array would silently truncate the values drawn
        raise TypeError(f"{name}: the array must be floating point, got {a.dtype}")
    if not a.flags.writeable:
        raise ValueError(f"{name}: the array is read-only")
    return a


def uniform_(a, low=0.0, high=1.0, rng=None):
    _host(a, "uniform_")[...] = generator(rng).uniform(low, high, a.shape)
    return a


def normal_(a, mean=0.0, std=1.0, rng=None):
    _host(a, "normal_")[...] = generator(rng).normal(mean, std, a.shape)
    return a


def zeros_(a):
    _host(a, "zeros_")[...] = 0
    return a


def ones_(a):
    _host(a, "ones_")[...] = 1
    return a


def xavier_uniform_(a, gain=1.0, rng=None):
    """U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = fans(a.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(a, -bound, bound, rng)


def xavier_normal_(a, gain=1.0, rng=None):
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(a.shape)
    return normal_(a, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)


def _kaiming_std(a_shape, a, mode, nonlinearity):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fans(a_shape)[0 if mode == "fan_in" else 1]
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(t, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """U(-b, b), b = gain * sqrt(3 / fan) (He et al., 2015); a is the leaky slope."""
    bound = math.sqrt(3.0) * _kaiming_std(t.shape, a, mode, nonlinearity)
    return uniform_(t, -bound, bound, rng)


def kaiming_normal_(t, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """N(0, std^2), std = gain / sqrt(fan)."""
    return normal_(t, 0.0, _kaiming_std(t.shape, a, mode, nonlinearity), rng)


# Glorot and He under their other names.
glorot_uniform_, glorot_normal_ = xavier_uniform_, xavier_normal_
he_uniform_, he_normal_ = kaiming_uniform_, kaiming_normal_


def default_weight_and_bias_(weight, bias, rng=None):
    """PyTorch's default for Linear and Conv2d: kaiming_uniform(a=sqrt(5)) for the weight,
    which is U(+-1/sqrt(fan_in)), and U(+-1/sqrt(fan_in)) for the bias."""
    rng = generator(rng)
    kaiming_uniform_(weight, a=math.sqrt(5), rng=rng)
    if bias is not None:
        bound = 1 / math.sqrt(fans(weight.shape)[0])
        uniform_(bias, -bound, bound, rng)
