"""Optimizer steps: one elementwise kernel each, updating the parameter and its
state in place (PyTorch's formulas, as reference/optim.py). Scalars that depend only
on the step (bias corrections, decayed rates) are computed once on the host and
passed in the parameter's dtype."""

import math

from numba import cuda

from ._arrays import asarray, flat
from ._jit import THREADS, blocks_for, boolean, kernel


@cuda.jit(device=True, inline="always")
def _decayed(grad, param, weight_decay, zero):
    """The gradient with the L2 term; skipped when 0 so that an inf parameter with no
    decay does not turn the gradient into NaN."""
    return grad + weight_decay * param if weight_decay != zero else grad


@kernel(lambda f: (f[::1], f[::1], f[::1], f, f, boolean, f))
def sgd_kernel(F):
    def sgd(param, grad, velocity, lr, momentum, nesterov, weight_decay):
        for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
            g = _decayed(grad[i], param[i], weight_decay, F(0))
            if momentum != F(0):
                v = momentum * velocity[i] + g
                velocity[i] = v
                g = g + momentum * v if nesterov else v
            param[i] -= lr * g
    return sgd


@kernel(lambda f: (f[::1], f[::1], f[::1], f[::1], f, f, f, f, f, f))
def adam_kernel(F):
    def adam(param, grad, m, v, step_size, beta1, beta2, sqrt_bias2, eps, weight_decay):
        for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
            g = _decayed(grad[i], param[i], weight_decay, F(0))
            m[i] = beta1 * m[i] + (F(1) - beta1) * g
            v[i] = beta2 * v[i] + (F(1) - beta2) * g * g
            param[i] -= step_size * m[i] / (math.sqrt(v[i]) / sqrt_bias2 + eps)
    return adam


@kernel(lambda f: (f[::1], f[::1], f[::1], f, f, f))
def adagrad_kernel(F):
    def adagrad(param, grad, sum_sq, lr, eps, weight_decay):
        for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
            g = _decayed(grad[i], param[i], weight_decay, F(0))
            sum_sq[i] += g * g
            param[i] -= lr * g / (math.sqrt(sum_sq[i]) + eps)
    return adagrad


@kernel(lambda f: (f[::1], f[::1], f[::1], f[::1], f, f, f, f, f))
def rmsprop_kernel(F):
    def rmsprop(param, grad, square_avg, buf, lr, alpha, eps, weight_decay, momentum):
        for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
            g = _decayed(grad[i], param[i], weight_decay, F(0))
            square_avg[i] = alpha * square_avg[i] + (F(1) - alpha) * g * g
            step = g / (math.sqrt(square_avg[i]) + eps)
            if momentum != F(0):
                buf[i] = momentum * buf[i] + step
                step = buf[i]
            param[i] -= lr * step
    return rmsprop


@kernel(lambda f: (f[::1], f[::1], f[::1], f[::1], f, f, f, f))
def adadelta_kernel(F):
    def adadelta(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay):
        for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
            g = _decayed(grad[i], param[i], weight_decay, F(0))
            square_avg[i] = rho * square_avg[i] + (F(1) - rho) * g * g
            delta = math.sqrt(acc_delta[i] + eps) / math.sqrt(square_avg[i] + eps) * g
            acc_delta[i] = rho * acc_delta[i] + (F(1) - rho) * delta * delta
            param[i] -= lr * delta
    return adadelta


def _launch(template, param, *arrays_then_scalars):
    """Run an update kernel on flat views of the arrays (None: param, never read) with
    the scalars in param's dtype."""
    param = asarray(param)
    f = param.dtype.type
    args = [flat(param)]
    for a in arrays_then_scalars:
        if a is None:
            args.append(args[0])
        elif isinstance(a, bool):
            args.append(a)
        elif isinstance(a, (int, float)):
            args.append(f(a))
        else:
            args.append(flat(asarray(a)))
    template(param.dtype)[blocks_for(param.size), THREADS](*args)


def sgd_step(param, grad, velocity, lr, momentum, nesterov, weight_decay):
    _launch(sgd_kernel, param, grad, velocity, lr, momentum, bool(nesterov), weight_decay)


def adam_step(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay):
    bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
    _launch(adam_kernel, param, grad, m, v, lr / bias1, beta1, beta2, math.sqrt(bias2), eps,
            weight_decay)


def adagrad_step(param, grad, sum_sq, step, lr, lr_decay, eps, weight_decay):
    _launch(adagrad_kernel, param, grad, sum_sq, lr / (1 + (step - 1) * lr_decay), eps,
            weight_decay)


def rmsprop_step(param, grad, square_avg, buf, lr, alpha, eps, weight_decay, momentum):
    _launch(rmsprop_kernel, param, grad, square_avg, buf, lr, alpha, eps, weight_decay, momentum)


def adadelta_step(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay):
    _launch(adadelta_kernel, param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay)
