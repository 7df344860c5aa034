"""The cpu backend: compiled Cython kernels (OpenMP over the batch, BLAS gemm) on NumPy arrays.

The heavy ops come from kernels/*.pyx, and so do the elementwise ops that a
training step runs on every activation or parameter (ReLU and its backward,
the SGD and Adam steps), where NumPy's temporaries would cost a visible share of
the step. The other elementwise ops, losses and optimizer steps are NumPy
expressions, whose ufuncs already are compiled loops, shared with the reference.
"""

from .._kernels.conv import col2im, conv2d, conv2d_backward, im2col  # noqa: F401
from .._kernels.linalg import linear, linear_backward, matmul  # noqa: F401
from .._kernels.pool import (avg_pool2d, avg_pool2d_backward, max_pool2d,  # noqa: F401
                             max_pool2d_backward)
from .._kernels.train import adam_step, relu, relu_backward, sgd_step  # noqa: F401
from .._kernels.upsample import upsample_nearest2d, upsample_nearest2d_backward  # noqa: F401
from ._numpy import (DEVICE, asarray, check_indices, check_labels, empty,  # noqa: F401
                     is_array, to_host, zeros)
from .reference import (adadelta_step, adagrad_step, batch_norm,  # noqa: F401
                        batch_norm_backward, bce, bce_backward, bce_with_logits,
                        bce_with_logits_backward, count_correct, dropout, dropout_backward,
                        elu, elu_backward, leaky_relu, leaky_relu_backward, maxout,
                        maxout_backward, mse, mse_backward, rmsprop_step, sigmoid,
                        sigmoid_backward, softmax, softmax_backward, softmax_cross_entropy,
                        softmax_cross_entropy_backward, tanh, tanh_backward)
