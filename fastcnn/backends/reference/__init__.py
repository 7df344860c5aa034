"""The reference backend: every op written straight from its definition.

This is the oracle the compiled and CUDA backends are tested against, so it is
written to be read, not to be fast: convolution and pooling are sums over the
kernel's taps (one strided slice per tap), never im2col; matmul is the sum of
products. Arguments arrive already checked and normalised by
``fastcnn.functional`` (pairs are ``(h, w)`` tuples, arrays are contiguous and
share one floating dtype); results have the input's dtype.

Every op that returns arrays takes ``out=``: an array (or a tuple matching the
returned tuple, ``None`` entries allocated) to write the result into.

One module per op family, named as in the cpu and cuda backends: ``conv``,
``pool``, ``upsample``, ``dense``, ``elementwise``, ``softmax``, ``norm``, ``losses``,
``optim``.
"""

from .._numpy import (DEVICE, asarray, check_indices, check_labels, empty,  # noqa: F401
                      is_array, to_host, zeros)
from .conv import (col2im, conv2d, conv2d_backward, conv_transpose2d,  # noqa: F401
                   conv_transpose2d_backward, im2col)
from .dense import linear, linear_backward, matmul, matmul_backward  # noqa: F401
from .elementwise import (dropout, dropout_backward, elu, elu_backward,  # noqa: F401
                          leaky_relu, leaky_relu_backward, maxout, maxout_backward, relu,
                          relu_backward, sigmoid, sigmoid_backward, tanh, tanh_backward)
from .losses import (bce, bce_backward, bce_with_logits, bce_with_logits_backward,  # noqa: F401
                     count_correct, mse, mse_backward, softmax_cross_entropy,
                     softmax_cross_entropy_backward)
from .merge import add, concat, concat_backward, multiply  # noqa: F401
from .norm import batch_norm, batch_norm_backward  # noqa: F401
from .optim import adadelta_step, adagrad_step, adam_step, rmsprop_step, sgd_step  # noqa: F401
from .pool import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward,  # noqa: F401
                   adaptive_max_pool2d, avg_pool2d, avg_pool2d_backward, max_pool2d,
                   max_pool2d_backward)
from .softmax import (log_softmax, log_softmax_backward, softmax,  # noqa: F401
                      softmax_backward)
from .upsample import (upsample_bilinear2d, upsample_bilinear2d_backward,  # noqa: F401
                       upsample_nearest2d, upsample_nearest2d_backward)
