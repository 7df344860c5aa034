"""The cpu backend: compiled Cython kernels (OpenMP over the batch, BLAS gemm) on NumPy arrays.

One module per op family, as in the other backends: each ``<family>.pyx`` here is
compiled into the extension module ``fastcnn.backends.cpu.<family>``. The heavy ops
(``conv``, ``winograd``, ``pool``, ``upsample``, ``dense``) are compiled, and so are
the elementwise ops a training step runs on every activation or parameter (ReLU and
its backward in ``elementwise``, the SGD and Adam steps in ``optim``), where NumPy's
temporaries would cost a visible share of the step. The other elementwise ops,
batch norm, losses and optimizer steps are the reference's NumPy expressions,
whose ufuncs already are compiled loops; ``softmax`` (softmax and log-softmax over
any axis) is NumPy too, in place, whose vectorised exp a compiled loop does not beat.

Beside the kernels: ``blas.pxd`` (a row-major gemm), ``blas_lib`` (the BLAS it calls:
NumPy's own OpenBLAS, else SciPy's), ``chunks.pxd`` (flat arrays cut into chunks for
OpenMP), ``threads`` (set_num_threads), ``workspace`` (reused scratch memory) and
``blas_threads`` (BLAS on one thread inside OpenMP loops).
"""

from . import _openmp  # noqa: F401  (first: it loads libgomp with its settings)
from .._numpy import (DEVICE, asarray, check_indices, check_labels, empty,  # noqa: F401
                      is_array, to_host, zeros)
from ..reference.elementwise import (dropout, dropout_backward, elu,  # noqa: F401
                                     elu_backward, leaky_relu, leaky_relu_backward, maxout,
                                     maxout_backward, sigmoid, sigmoid_backward, tanh,
                                     tanh_backward)
from ..reference.losses import (bce, bce_backward, bce_with_logits,  # noqa: F401
                                bce_with_logits_backward, count_correct, mse, mse_backward,
                                softmax_cross_entropy, softmax_cross_entropy_backward)
from ..reference.merge import add, concat, concat_backward, multiply  # noqa: F401
from ..reference.norm import batch_norm, batch_norm_backward  # noqa: F401
from ..reference.optim import adadelta_step, adagrad_step, rmsprop_step  # noqa: F401
from .conv import (col2im, conv2d, conv2d_backward, conv_transpose2d,  # noqa: F401
                   conv_transpose2d_backward, im2col)
from .dense import linear, linear_backward, matmul, matmul_backward  # noqa: F401
from .elementwise import relu, relu_backward  # noqa: F401
from .optim import adam_step, sgd_step  # noqa: F401
from .pool import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward,  # noqa: F401
                   adaptive_max_pool2d, avg_pool2d, avg_pool2d_backward, max_pool2d,
                   max_pool2d_backward)
from .softmax import (log_softmax, log_softmax_backward, softmax,  # noqa: F401
                      softmax_backward)
from .upsample import (upsample_bilinear2d, upsample_bilinear2d_backward,  # noqa: F401
                       upsample_nearest2d, upsample_nearest2d_backward)
