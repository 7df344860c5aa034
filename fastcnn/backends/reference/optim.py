"""Optimizer steps: in-place updates of a parameter and its state (PyTorch's formulas)."""

import numpy as np


# Each updates param (and its state arrays) in place, PyTorch's formulas;
# weight_decay is the L2 term added to the gradient.


def sgd_step(param, grad, velocity, lr, momentum, nesterov, weight_decay):
    g = grad + weight_decay * param if weight_decay else grad
    if momentum:
        velocity *= momentum
        velocity += g
        g = g + momentum * velocity if nesterov else velocity
    param -= lr * g


def adam_step(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay):
    g = grad + weight_decay * param if weight_decay else grad
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
    param -= (lr / bias1) * m / (np.sqrt(v) / np.sqrt(bias2) + eps)


def adagrad_step(param, grad, sum_sq, step, lr, lr_decay, eps, weight_decay):
    g = grad + weight_decay * param if weight_decay else grad
    sum_sq += g * g
    param -= (lr / (1 + (step - 1) * lr_decay)) * g / (np.sqrt(sum_sq) + eps)


def rmsprop_step(param, grad, square_avg, buf, lr, alpha, eps, weight_decay, momentum):
    g = grad + weight_decay * param if weight_decay else grad
    square_avg *= alpha
    square_avg += (1 - alpha) * g * g
    step = g / (np.sqrt(square_avg) + eps)
    if momentum:
        buf *= momentum
        buf += step
        step = buf
    param -= lr * step


def adadelta_step(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay):
    g = grad + weight_decay * param if weight_decay else grad
    square_avg *= rho
    square_avg += (1 - rho) * g * g
    delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * g
    acc_delta *= rho
    acc_delta += (1 - rho) * delta * delta
    param -= lr * delta
