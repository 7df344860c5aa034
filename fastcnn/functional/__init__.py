"""fastcnn.functional: one function per op, whatever the backend.

Each function checks its arguments once (ranks, dtypes, shapes, ranges), with
messages that name the argument and the shapes, normalises them (pairs become
``(h, w)`` tuples, arrays become contiguous), picks the backend from where the
data lives (NumPy arrays -> ``cpu``, CUDA arrays -> ``cuda``) unless
``backend=`` names one, and calls that backend's function of the same name.
Backends trust what they get, which keeps the compiled loops free of checks.

One kind of check needs the values, not just the shapes: that indices (max-pool
and maxout arg-max positions) and class labels lie in range. The backend does it
(``check_indices``, ``check_labels``), because on the GPU looking at values means
a copy to the host and a wait for the GPU, which a training step should pay once
(for its loss), not for every such array. NumPy backends simply check. The cuda
backend does not re-check indices its own max_pool2d/maxout wrote (any others it
checks, with that copy), and leaves labels to the loss kernels that read them:
they skip and count bad ones, and the op raises the same ValueError from the
value it brings to the host anyway (softmax_cross_entropy, count_correct), or,
where nothing comes back, marks them (softmax_cross_entropy_backward: NaN rows
of the gradient; count_correct(into=): not counted). Kernels that read indices
skip out-of-range ones, so nothing that reaches them can write out of bounds.

Layouts follow PyTorch: images are NCHW, conv weights (out, in, kh, kw),
linear weights (out_features, in_features). Every int argument for a 2-D op
also takes a pair ``(h, w)``. Results have the input's dtype (float32 or
float64).

Arrays in: NumPy arrays, or anything NumPy makes a float array of (a list of
floats, a NumPy scalar); a big-endian float array is converted to native byte
order (a copy, like a non-contiguous array). Other dtypes (int, bool, complex,
float16, object) are refused, never cast. No array, given or computed, may hold
more than 2**31 - 1 elements (the kernels index with C int), nor a size
argument exceed that; a result larger than the machine's memory is refused
before anything is allocated.

Ops returning arrays take ``out=`` to write into (a tuple for ops returning
several, ``None`` entries allocated): an array where the op computes, of the
result's shape and dtype, C-contiguous, writeable, and sharing no memory with
the op's inputs or its other outputs. The elementwise activations and their
backward ops (and dropout_backward) may write in place: their ``out`` may be
one of their inputs itself (``F.relu(x, out=x)``), though not a part of one.
Arrays an op updates in place (running statistics, optimizer state) are checked
the same way. Results the caller did not pass are allocated here, so a backend
op only fills the arrays it is handed.
"""

from .._args import PADDING_MODES  # noqa: F401
from ._checks import FLOAT_DTYPES  # noqa: F401
from .conv import (  # noqa: F401
    col2im, conv1d, conv1d_backward, conv2d, conv2d_backward, conv_transpose2d,
    conv_transpose2d_backward, im2col)
from .pool import (  # noqa: F401
    adaptive_avg_pool1d, adaptive_avg_pool1d_backward, adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward, adaptive_max_pool1d, adaptive_max_pool1d_backward,
    adaptive_max_pool2d, adaptive_max_pool2d_backward, avg_pool1d, avg_pool1d_backward, avg_pool2d,
    avg_pool2d_backward, max_pool1d, max_pool1d_backward, max_pool2d, max_pool2d_backward)
from .resample import (  # noqa: F401
    upsample_bilinear2d, upsample_bilinear2d_backward, upsample_nearest2d,
    upsample_nearest2d_backward)
from .dense import (  # noqa: F401
    linear, linear_backward, matmul, matmul_backward)
from .elementwise import (  # noqa: F401
    dropout, dropout_backward, elu, elu_backward, leaky_relu, leaky_relu_backward, log_softmax,
    log_softmax_backward, maxout, maxout_backward, relu, relu_backward, sigmoid, sigmoid_backward,
    softmax, softmax_backward, tanh, tanh_backward)
from .norm import (  # noqa: F401
    batch_norm, batch_norm_backward)
from .losses import (  # noqa: F401
    bce, bce_backward, bce_with_logits, bce_with_logits_backward, count_correct, mse, mse_backward,
    softmax_cross_entropy, softmax_cross_entropy_backward)
from .merge import add, concat, concat_backward, multiply  # noqa: F401
from .optim import (  # noqa: F401
    adadelta_step, adagrad_step, adam_step, rmsprop_step, sgd_step)
