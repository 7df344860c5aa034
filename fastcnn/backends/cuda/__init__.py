"""The cuda backend: every op as Numba CUDA kernels, on device arrays.

Same op names, signatures and results as the reference backend; arrays in and out
are Numba device arrays (CuPy arrays and PyTorch CUDA tensors are accepted as
they are, through ``__cuda_array_interface__``). Data stays on the GPU: no op
copies to the host, except a loss's value and count_correct's count (one small
copy each, which also brings back the loss kernels' own check of the labels) and
the range check of index arrays that fastcnn's kernels did not write (see
``check_indices``): a training step copies only its loss.

Modules, one per op family as in the other backends: ``conv`` (im2col/col2im
around the GEMM), ``pool``, ``upsample``, ``dense`` (matmul, linear), ``elementwise``
(activations, maxout, dropout), ``softmax`` (softmax and log-softmax over any axis),
``norm`` (batch norm), ``losses``, ``optim``.
Beside them: ``gemm`` (the one matrix-product kernel behind dense and conv),
``reduce`` (block sums), ``_arrays`` (device arrays), ``_jit`` (how a kernel is
written once for float32 and float64; templates are named ``<op>_kernel``, so they
cannot be mistaken for the op), ``compile_check`` (compiles every kernel for a real
GPU), ``tune_gemm`` (times the GEMM's tile shapes; ``fastcnn-bench --device cuda``
times the ops against PyTorch) and ``memory`` (CUDA's stream-ordered memory pool in
place of Numba's allocator, ``use_memory_pool()``).

Without a GPU, set ``NUMBA_ENABLE_CUDASIM=1`` before numba is imported to run
the kernels on Numba's CUDA simulator (slow: for tests).
"""

try:
    import numba_cuda  # noqa: F401  (numba's own numba.cuda is deprecated and not enough)
except ImportError:
    raise ImportError(
        'the cuda backend needs numba-cuda: pip install "fastcnn[gpu]" (CUDA 13 drivers), '
        'or pip install "fastcnn[gpu-cu12]" for drivers older than CUDA 13') from None

from ._arrays import (DEVICE, asarray, check_indices, empty, is_array, to_device,  # noqa: F401
                      to_host, zeros)
from .conv import (col2im, conv2d, conv2d_backward, conv_transpose2d,  # noqa: F401
                   conv_transpose2d_backward, im2col)
from .dense import linear, linear_backward, matmul, matmul_backward  # noqa: F401
from .elementwise import (dropout, dropout_backward, elu, elu_backward,  # noqa: F401
                          leaky_relu, leaky_relu_backward, maxout, maxout_backward, relu,
                          relu_backward, sigmoid, sigmoid_backward, tanh, tanh_backward)
from .losses import (bce, bce_backward, bce_with_logits, bce_with_logits_backward,  # noqa: F401
                     check_labels, count_correct, mse, mse_backward, softmax_cross_entropy,
                     softmax_cross_entropy_backward)
from .memory import use_memory_pool  # noqa: F401
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
