"""Bad input gets a ValueError or TypeError that names the argument, on every backend:
never a crash, a hang, or a silently wrong answer."""

import numpy as np
import pytest

import fastcnn.functional as F
from helpers import to_backend

X = np.zeros((2, 3, 8, 8), np.float32)
W = np.zeros((4, 3, 3, 3), np.float32)


def raises(backend, error, match, op, *args, **kwargs):
    with pytest.raises(error, match=match):
        getattr(F, op)(*to_backend(backend, *args), backend=backend, **kwargs)


CONV_ERRORS = [  # (error, message pattern, positional args, keyword args)
    (TypeError, "weight is float64 but x is float32", (X, W.astype(np.float64)), {}),
    (TypeError, "x must be float32 or float64, got int64", (X.astype(np.int64), W), {}),
    (TypeError, "x must be float32 or float64, got <U3", ("abc", W), {}),
    (ValueError, r"x must be 4-D .* got shape \(3, 8, 8\)", (X[0], W), {}),
    (ValueError, r"weight must be 4-D", (X, W[0]), {}),
    (ValueError, r"weight expects 3 input channels but x has 2 .*x.shape=\(2, 2, 8, 8\)",
     (X[:, :2], W), {}),
    (ValueError, r"kernel \(3x3, extent 3 along H\) is larger than the padded input",
     (X[:, :, :2, :2], W), {}),
    (ValueError, r"dilated kernel", (X, W), dict(dilation=4)),
    (ValueError, "stride must be >= 1, got 0", (X, W), dict(stride=0)),
    (ValueError, "stride must be >= 1, got -1", (X, W), dict(stride=(1, -1))),
    (ValueError, "padding must be >= 0, got -1", (X, W), dict(padding=-1)),
    (ValueError, "dilation must be >= 1, got 0", (X, W), dict(dilation=0)),
    (TypeError, "stride must be an int, got 1.5", (X, W), dict(stride=1.5)),
    (TypeError, "padding must be an int, got True", (X, W), dict(padding=True)),
    (ValueError, r"padding must be an int, \(h, w\), \(top, bottom, left, right\)", (X, W),
     dict(padding=(1, 1, 1))),
    (ValueError, "padding='same' needs stride 1", (X, W), dict(padding="same", stride=2)),
    (ValueError, "padding must be an int, a pair, a 4-tuple", (X, W), dict(padding="full")),
    (ValueError, r"x has an empty batch", (X[:0], W), {}),
    (ValueError, r"bias must have shape \(4,\)", (X, W, np.zeros(3, np.float32)), {}),
]


@pytest.mark.parametrize("error, match, args, kwargs", CONV_ERRORS)
def test_conv2d_rejects(any_backend, error, match, args, kwargs):
    raises(any_backend, error, match, "conv2d", *args, **kwargs)


def test_conv2d_backward_rejects(any_backend):
    dy = np.zeros((2, 4, 6, 6), np.float32)
    raises(any_backend, ValueError, r"dy must have the output's shape \(2, 4, 6, 6\)",
           "conv2d_backward", dy[:, :3], X, W)
    raises(any_backend, TypeError, "weight is float64", "conv2d_backward", dy, X,
           W.astype(np.float64))
    raises(any_backend, TypeError, r"out must be a tuple of 3", "conv2d_backward", dy, X, W,
           out=np.zeros(3))


def test_pool_rejects(any_backend):
    for op in ("max_pool2d", "avg_pool2d"):
        raises(any_backend, ValueError,
               r"padding \(2, 2, 2, 2\) \(top, bottom, left, right\) must be at most half of",
               op, X, 3, 1, 2)
        raises(any_backend, ValueError, "kernel_size must be >= 1", op, X, 0)
        raises(any_backend, ValueError, "stride must be >= 1", op, X, 2, 0)
        raises(any_backend, ValueError, "larger than the padded input", op, X, 9)
        raises(any_backend, ValueError, "x must be 4-D", op, X[0], 2)
        raises(any_backend, TypeError, "x must be float32 or float64", op, X.astype(int), 2)
        raises(any_backend, ValueError, "x has an empty batch", op, X[:0], 2)


def test_max_pool_backward_rejects(any_backend):
    y, idx = F.max_pool2d(X, 2)
    raises(any_backend, ValueError, r"indices must lie in \[0, 64\), found values in \[-1, 53\]",
           "max_pool2d_backward", y, idx - 1, X.shape)
    raises(any_backend, ValueError, r"indices must lie in \[0, 64\)", "max_pool2d_backward",
           y, idx + 64, X.shape)
    raises(any_backend, TypeError, "indices must hold integers, got float32",
           "max_pool2d_backward", y, idx.astype(np.float32), X.shape)
    raises(any_backend, ValueError, "dy and indices must have the same shape",
           "max_pool2d_backward", y, idx[:, :, :2], X.shape)
    raises(any_backend, ValueError, r"does not match input_shape=\(2, 5, 8, 8\)",
           "max_pool2d_backward", y, idx, (2, 5, 8, 8))
    raises(any_backend, ValueError, r"input_shape must be \(N, C, H, W\)",
           "max_pool2d_backward", y, idx, (2, 3, 8))
    raises(any_backend, TypeError, "input_shape must be a tuple of 4 ints",
           "max_pool2d_backward", y, idx, (2, 3, 8.5, 8))


def test_avg_pool_backward_rejects(any_backend):
    y = F.avg_pool2d(X, 2)
    raises(any_backend, ValueError, r"dy must have shape \(2, 3, 4, 4\)", "avg_pool2d_backward",
           y[:, :, :3], X.shape, 2)


def test_im2col_col2im_reject(any_backend):
    cols = F.im2col(X, 3)
    raises(any_backend, ValueError, r"cols must have shape \(2, 27, 36\)", "col2im",
           cols[:, :20], X.shape, 3)
    raises(any_backend, ValueError, "kernel_size must be >= 1", "im2col", X, (3, 0))


def test_upsample_rejects(any_backend):
    raises(any_backend, ValueError, "scale_factor must be positive", "upsample_nearest2d", X, 0)
    raises(any_backend, TypeError, "scale_factor must be a number", "upsample_nearest2d", X, "2")
    raises(any_backend, ValueError, r"multiples of scale_factor \(3, 3\)",
           "upsample_nearest2d_backward", X, 3)


def test_dense_rejects(any_backend):
    a = np.zeros((3, 4), np.float32)
    raises(any_backend, ValueError,
           r"inner dimensions differ \(a.shape=\(3, 4\), b.shape=\(3, 4\)\)", "matmul", a, a)
    raises(any_backend, ValueError, "inner dimensions differ", "matmul", X, a)
    raises(any_backend, ValueError, "weight expects 3 input features but x has 4", "linear",
           a, a[:, :3])
    raises(any_backend, ValueError, r"dy must have shape \(3, 3\)", "linear_backward",
           a, a, a[:3])


def test_out_is_checked(any_backend):
    raises(any_backend, ValueError, r"out must have shape \(2, 4, 6, 6\) and dtype float32",
           "conv2d", X, W, out=np.zeros((2, 4, 6, 5), np.float32))
    raises(any_backend, ValueError, "out must have shape .* and dtype float32, got shape "
           r"\(2, 4, 6, 6\) and dtype float64", "conv2d", X, W,
           out=np.zeros((2, 4, 6, 6), np.float64))


def test_train_ops_reject(any_backend):
    logits = np.zeros((4, 3), np.float32)
    raises(any_backend, ValueError, r"labels must lie in \[0, 3\)", "softmax_cross_entropy",
           logits, np.array([0, 1, 3, 0]))
    raises(any_backend, TypeError, "labels must hold integers", "softmax_cross_entropy",
           logits, np.zeros(4, np.float32))
    raises(any_backend, ValueError, r"labels must have shape \(4,\)", "softmax_cross_entropy",
           logits, np.zeros(3, int))
    raises(any_backend, ValueError, r"labels must lie in \[0, 3\)", "count_correct",
           logits, np.array([0, 1, 3, 0]))
    raises(any_backend, ValueError, r"into must have shape \(1,\) and dtype int64",
           "count_correct", logits, np.zeros(4, int),
           into=to_backend(any_backend, np.zeros(1, np.int32))[0])
    raises(any_backend, ValueError, "logits and targets must have the same shape",
           "bce_with_logits", logits, logits[:2])
    raises(any_backend, ValueError, r"p must be in \[0, 1\)", "dropout", logits, 1.0, 0)
    raises(any_backend, ValueError, "training needs more than one value per channel",
           "batch_norm", logits[:1], np.ones(3, np.float32), np.zeros(3, np.float32))
    raises(any_backend, ValueError, r"gamma must have shape \(3,\)", "batch_norm", logits,
           np.ones(2, np.float32), np.zeros(3, np.float32))
    raises(any_backend, ValueError, "axis 1 must be a multiple of pool_size=2", "maxout",
           logits, 2)
    raises(any_backend, ValueError, "needs a velocity array", "sgd_step", logits,
           logits.copy(), None, momentum=0.9)


def test_mixed_devices_and_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        F.relu(X, backend="tpu")
