"""The implementations the suite times side by side, all with the same calls.

Every implementation offers the same steps (``conv2d``, ``conv2d_train``,
``max_pool2d``, ...), taking NumPy-shaped inputs already moved to its device by
``put`` and returning arrays (or tuples of arrays) that ``get`` brings back to
NumPy for validation. A ``*_train`` step is the forward followed by the
backward for an upstream gradient ``dy``, returning the forward's output and
every gradient, so all implementations do the same work:

    conv2d_train      -> (y, dx, dweight, dbias)
    conv2d_dx         -> dx               # the backward's parts alone, for dy
    conv2d_dweight    -> (dweight, dbias)
    grouped_conv2d_train, conv_transpose2d_train -> (y, dx, dweight, dbias)
    max/avg_pool2d_train, upsample_nearest2d_train, upsample_bilinear2d_train -> (y, dx)
    linear_train      -> (y, dx, dweight, dbias)
    max_pool2d        -> (y, indices)   # indices as h * W + w: what backward needs
    max_pool2d_infer  -> y                # inference: what an eval-mode forward needs

The training steps take the host arrays (images, labels, starting weights), build
the seed CNN once and return the call to time, which trains on at every call:

    train_step        -> call() -> (loss, *gradients)   # one step on one batch
    train_epoch       -> call() -> (mean loss,)         # one epoch of shuffled batches
    predict           -> call() -> logits               # eval-mode forward of the batch

To add an op: a step method here on each implementation, and one entry in cases.py.
"""

import functools
import time

import numpy as np

from . import numpy_baseline, training


class Implementation:
    name = ""
    device = "cpu"
    label = ""

    def unavailable(self):
        """None when this implementation can run here, else the reason it cannot."""
        return None

    def put(self, a):
        return a

    def get(self, a):
        """A result (an array or a tuple of them) as NumPy arrays on the host."""
        if isinstance(a, tuple):
            return tuple(self.get(v) for v in a)
        return self.to_numpy(a)

    def to_numpy(self, a):
        return np.asarray(a)

    def seconds(self, call):
        """Wall time of call(), the device's work included."""
        start = time.perf_counter()
        call()
        return time.perf_counter() - start


class Fastcnn(Implementation):
    """fastcnn.functional on one backend: reference, cpu or cuda."""

    def __init__(self, backend):
        self.backend = backend
        self.name = "reference" if backend == "reference" else f"fastcnn-{backend}"
        self.label = {"reference": "fastcnn reference (NumPy, from the definition)",
                      "cpu": "fastcnn cpu (Cython, OpenMP, BLAS)",
                      "cuda": "fastcnn cuda (Numba CUDA)"}[backend]
        self.device = "cuda" if backend == "cuda" else "cpu"

    def unavailable(self):
        if self.backend != "cuda":
            return None
        try:
            from numba import config, cuda

            from fastcnn import backends
            backends.get("cuda")
        except Exception as e:  # noqa: BLE001 -- no numba-cuda, no driver, ...: say why
            return f"the cuda backend does not load ({type(e).__name__}: {e})"
        if config.ENABLE_CUDASIM:
            return "numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM): not a real GPU"
        if not cuda.is_available():
            return "no CUDA GPU"
        return None

    @property
    def F(self):
        import fastcnn.functional
        return fastcnn.functional

    def put(self, a):
        if self.device == "cuda" and isinstance(a, np.ndarray):
            import fastcnn
            return fastcnn.to_device(a)
        return a

    def to_numpy(self, a):
        import fastcnn
        return fastcnn.to_host(a)

    def seconds(self, call):
        if self.device != "cuda":
            return super().seconds(call)
        from numba import cuda
        start, stop = cuda.event(), cuda.event()
        start.record()
        call()
        stop.record()
        stop.synchronize()
        return cuda.event_elapsed_time(start, stop) / 1e3

    def conv2d(self, x, weight, bias, stride, padding):
        return self.F.conv2d(x, weight, bias, stride, padding, backend=self.backend)

    def conv2d_train(self, x, weight, bias, dy, stride, padding):
        y = self.F.conv2d(x, weight, bias, stride, padding, backend=self.backend)
        dx, dweight, dbias = self.F.conv2d_backward(dy, x, weight, stride, padding,
                                                    backend=self.backend)
        return y, dx, dweight, dbias

    def conv2d_dx(self, x, weight, dy, stride, padding):
        return self.F.conv2d_backward(dy, x, weight, stride, padding, need_dweight=False,
                                      backend=self.backend)[0]

    def conv2d_dweight(self, x, weight, dy, stride, padding):
        _, dweight, dbias = self.F.conv2d_backward(dy, x, weight, stride, padding,
                                                   need_dx=False, backend=self.backend)
        return dweight, dbias

    def grouped_conv2d(self, x, weight, bias, stride, padding, groups):
        return self.F.conv2d(x, weight, bias, stride, padding, groups=groups,
                             backend=self.backend)

    def grouped_conv2d_train(self, x, weight, bias, dy, stride, padding, groups):
        y = self.grouped_conv2d(x, weight, bias, stride, padding, groups)
        dx, dweight, dbias = self.F.conv2d_backward(dy, x, weight, stride, padding,
                                                    groups=groups, backend=self.backend)
        return y, dx, dweight, dbias

    def conv_transpose2d(self, x, weight, bias, stride, padding):
        return self.F.conv_transpose2d(x, weight, bias, stride, padding, backend=self.backend)

    def conv_transpose2d_train(self, x, weight, bias, dy, stride, padding):
        y = self.conv_transpose2d(x, weight, bias, stride, padding)
        dx, dweight, dbias = self.F.conv_transpose2d_backward(dy, x, weight, stride, padding,
                                                              backend=self.backend)
        return y, dx, dweight, dbias

    def im2col(self, x, kernel_size, stride, padding):
        return self.F.im2col(x, kernel_size, stride, padding, backend=self.backend)

    def col2im(self, cols, input_shape, kernel_size, stride, padding):
        return self.F.col2im(cols, input_shape, kernel_size, stride, padding,
                             backend=self.backend)

    def max_pool2d(self, x, kernel_size):
        return self.F.max_pool2d(x, kernel_size, backend=self.backend)

    def max_pool2d_infer(self, x, kernel_size):
        return self.F.max_pool2d(x, kernel_size, indices=False, backend=self.backend)

    def max_pool2d_train(self, x, dy, kernel_size):
        y, indices = self.F.max_pool2d(x, kernel_size, backend=self.backend)
        return y, self.F.max_pool2d_backward(dy, indices, x.shape, backend=self.backend)

    def avg_pool2d(self, x, kernel_size):
        return self.F.avg_pool2d(x, kernel_size, backend=self.backend)

    def avg_pool2d_train(self, x, dy, kernel_size):
        y = self.F.avg_pool2d(x, kernel_size, backend=self.backend)
        return y, self.F.avg_pool2d_backward(dy, x.shape, kernel_size, backend=self.backend)

    def adaptive_avg_pool2d(self, x, output_size):
        return self.F.adaptive_avg_pool2d(x, output_size, backend=self.backend)

    def adaptive_avg_pool2d_train(self, x, dy, output_size):
        y = self.F.adaptive_avg_pool2d(x, output_size, backend=self.backend)
        return y, self.F.adaptive_avg_pool2d_backward(dy, x.shape, backend=self.backend)

    def max_pool2d_ceil(self, x, kernel_size, stride):
        return self.F.max_pool2d(x, kernel_size, stride, ceil_mode=True, backend=self.backend)

    def max_pool2d_ceil_train(self, x, dy, kernel_size, stride):
        y, indices = self.max_pool2d_ceil(x, kernel_size, stride)
        return y, self.F.max_pool2d_backward(dy, indices, x.shape, backend=self.backend)

    def upsample_nearest2d(self, x, scale_factor):
        return self.F.upsample_nearest2d(x, scale_factor, backend=self.backend)

    def upsample_nearest2d_train(self, x, dy, scale_factor):
        y = self.F.upsample_nearest2d(x, scale_factor, backend=self.backend)
        return y, self.F.upsample_nearest2d_backward(dy, x.shape, scale_factor,
                                                     backend=self.backend)

    def upsample_bilinear2d(self, x, scale_factor, align_corners):
        return self.F.upsample_bilinear2d(x, scale_factor, align_corners=align_corners,
                                          backend=self.backend)

    def upsample_bilinear2d_train(self, x, dy, scale_factor, align_corners):
        y = self.F.upsample_bilinear2d(x, scale_factor, align_corners=align_corners,
                                       backend=self.backend)
        return y, self.F.upsample_bilinear2d_backward(
            dy, x.shape, scale_factor, align_corners=align_corners, backend=self.backend)

    def matmul(self, a, b):
        return self.F.matmul(a, b, backend=self.backend)

    def linear(self, x, weight, bias):
        return self.F.linear(x, weight, bias, backend=self.backend)

    def linear_train(self, x, weight, bias, dy):
        y = self.F.linear(x, weight, bias, backend=self.backend)
        return (y,) + tuple(self.F.linear_backward(dy, x, weight, backend=self.backend))

    def predict(self, x, y, **weights):
        model = self._model(weights, 1e-3).eval()
        x = self.put(x)
        return lambda: model.forward(x)

    def _model(self, weights, lr):
        if self.backend == "reference":
            raise NotImplementedError("fastcnn's layers run on the cpu and cuda backends only")
        return training.fastcnn_model(weights, lr, self.device)

    def train_step(self, x, y, lr, **weights):
        model = self._model(weights, lr)
        params = model.parameters()
        x, y = self.put(x), self.put(y)   # the batch waits on the device

        def step():
            loss, _ = model.train_step(x, y)
            return (np.float64(loss),) + tuple(p.grad for p in params)
        return step

    def train_epoch(self, x, y, lr, batch_size, shuffle_seed, **weights):
        model = self._model(weights, lr)
        batches = training.shuffled(x, y, batch_size, shuffle_seed)
        return lambda: (np.float64(model.fit(batches, verbose=0)["loss"][0]),)


class NumPy(Implementation):
    """numpy_baseline.py: im2col through strided views and BLAS matmul."""

    name = "numpy"
    label = "plain NumPy (im2col via stride tricks + matmul)"

    conv2d = staticmethod(numpy_baseline.conv2d)
    conv2d_train = staticmethod(numpy_baseline.conv2d_train)
    conv2d_dx = staticmethod(numpy_baseline.conv2d_dx)
    conv2d_dweight = staticmethod(numpy_baseline.conv2d_dweight)
    im2col = staticmethod(numpy_baseline.im2col)
    col2im = staticmethod(numpy_baseline.col2im)
    max_pool2d = staticmethod(numpy_baseline.max_pool2d)
    max_pool2d_train = staticmethod(numpy_baseline.max_pool2d_train)

    def max_pool2d_infer(self, x, kernel_size):
        return numpy_baseline.max_pool2d(x, kernel_size)[0]
    avg_pool2d = staticmethod(numpy_baseline.avg_pool2d)
    avg_pool2d_train = staticmethod(numpy_baseline.avg_pool2d_train)
    adaptive_avg_pool2d = staticmethod(numpy_baseline.adaptive_avg_pool2d)
    adaptive_avg_pool2d_train = staticmethod(numpy_baseline.adaptive_avg_pool2d_train)
    max_pool2d_ceil = staticmethod(numpy_baseline.max_pool2d_ceil)
    max_pool2d_ceil_train = staticmethod(numpy_baseline.max_pool2d_ceil_train)
    upsample_nearest2d = staticmethod(numpy_baseline.upsample_nearest2d)

    def upsample_nearest2d_train(self, x, dy, scale_factor):
        if any(f != int(f) for f in scale_factor):
            return numpy_baseline.upsample_train(x, dy, scale_factor, "nearest")
        return numpy_baseline.upsample_nearest2d_train(x, dy, tuple(map(int, scale_factor)))

    def upsample_bilinear2d(self, x, scale_factor, align_corners):
        return numpy_baseline.upsample(x, scale_factor, "bilinear", align_corners)

    def upsample_bilinear2d_train(self, x, dy, scale_factor, align_corners):
        return numpy_baseline.upsample_train(x, dy, scale_factor, "bilinear", align_corners)
    matmul = staticmethod(numpy_baseline.matmul)
    linear = staticmethod(numpy_baseline.linear)
    linear_train = staticmethod(numpy_baseline.linear_train)

    def train_step(self, *args, **kwargs):
        raise NotImplementedError("no plain NumPy version of a training step")

    train_epoch = predict = train_step


class Torch(Implementation):
    """PyTorch's own kernels on one device; gradients through autograd, as users get them."""

    def __init__(self, device):
        self.device = device
        self.name = f"torch-{device}"
        self.label = f"PyTorch {device}"

    def unavailable(self):
        try:
            import torch
        except ImportError:
            return "PyTorch is not installed (pip install 'fastcnn[bench]')"
        if self.device == "cuda" and not torch.cuda.is_available():
            return "PyTorch sees no CUDA GPU"
        return None

    @functools.cached_property
    def torch(self):
        """torch, set up for this device before anything runs there: on CUDA, IEEE float32
        products as fastcnn's kernels compute (TF32 would also fail the validation), and
        cuDNN's fastest algorithm for each shape."""
        import torch
        if self.device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cudnn.benchmark = True
        return torch

    @property
    def F(self):
        import torch.nn.functional
        return torch.nn.functional

    def put(self, a):
        if isinstance(a, np.ndarray):
            return self.torch.from_numpy(a).to(self.device)
        return a

    def to_numpy(self, a):
        return a.detach().cpu().numpy() if isinstance(a, self.torch.Tensor) else np.asarray(a)

    def seconds(self, call):
        if self.device != "cuda":
            return super().seconds(call)
        start = self.torch.cuda.Event(enable_timing=True)
        stop = self.torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / 1e3

    def _leaves(self, *tensors):
        """Fresh leaves that want gradients, so each call starts from empty .grad fields."""
        return [t.detach().requires_grad_() for t in tensors]

    def _backward(self, y, dy, leaves):
        y.backward(dy)
        return (y.detach(),) + tuple(t.grad for t in leaves)

    def conv2d(self, x, weight, bias, stride, padding):
        return self.F.conv2d(x, weight, bias, stride, padding)

    def conv2d_train(self, x, weight, bias, dy, stride, padding):
        leaves = self._leaves(x, weight, bias)
        return self._backward(self.F.conv2d(*leaves, stride, padding), dy, leaves)

    def _conv2d_grads(self, x, weight, dy, stride, padding, wanted):
        """The gradients (dx, dweight, dbias) that wanted picks, by the op autograd calls
        for conv2d's backward when only those inputs require grad (the others None)."""
        return self.torch.ops.aten.convolution_backward(
            dy, x, weight, [weight.shape[0]], stride, padding, (1, 1), False, (0, 0), 1,
            wanted)

    def conv2d_dx(self, x, weight, dy, stride, padding):
        return self._conv2d_grads(x, weight, dy, stride, padding, (True, False, False))[0]

    def conv2d_dweight(self, x, weight, dy, stride, padding):
        return self._conv2d_grads(x, weight, dy, stride, padding, (False, True, True))[1:]

    def grouped_conv2d(self, x, weight, bias, stride, padding, groups):
        return self.F.conv2d(x, weight, bias, stride, padding, groups=groups)

    def grouped_conv2d_train(self, x, weight, bias, dy, stride, padding, groups):
        leaves = self._leaves(x, weight, bias)
        y = self.F.conv2d(*leaves, stride, padding, groups=groups)
        return self._backward(y, dy, leaves)

    def conv_transpose2d(self, x, weight, bias, stride, padding):
        return self.F.conv_transpose2d(x, weight, bias, stride, padding)

    def conv_transpose2d_train(self, x, weight, bias, dy, stride, padding):
        leaves = self._leaves(x, weight, bias)
        return self._backward(self.F.conv_transpose2d(*leaves, stride, padding), dy, leaves)

    def im2col(self, x, kernel_size, stride, padding):
        return self.F.unfold(x, kernel_size, padding=padding, stride=stride)

    def col2im(self, cols, input_shape, kernel_size, stride, padding):
        return self.F.fold(cols, input_shape[2:], kernel_size, padding=padding, stride=stride)

    def max_pool2d(self, x, kernel_size):
        return self.F.max_pool2d(x, kernel_size, return_indices=True)

    def max_pool2d_infer(self, x, kernel_size):
        return self.F.max_pool2d(x, kernel_size)

    def max_pool2d_train(self, x, dy, kernel_size):
        leaves = self._leaves(x)
        return self._backward(self.F.max_pool2d(leaves[0], kernel_size), dy, leaves)

    def avg_pool2d(self, x, kernel_size):
        return self.F.avg_pool2d(x, kernel_size)

    def avg_pool2d_train(self, x, dy, kernel_size):
        leaves = self._leaves(x)
        return self._backward(self.F.avg_pool2d(leaves[0], kernel_size), dy, leaves)

    def adaptive_avg_pool2d(self, x, output_size):
        return self.F.adaptive_avg_pool2d(x, output_size)

    def adaptive_avg_pool2d_train(self, x, dy, output_size):
        leaves = self._leaves(x)
        return self._backward(self.F.adaptive_avg_pool2d(leaves[0], output_size), dy, leaves)

    def max_pool2d_ceil(self, x, kernel_size, stride):
        return self.F.max_pool2d(x, kernel_size, stride, ceil_mode=True, return_indices=True)

    def max_pool2d_ceil_train(self, x, dy, kernel_size, stride):
        leaves = self._leaves(x)
        y = self.F.max_pool2d(leaves[0], kernel_size, stride, ceil_mode=True)
        return self._backward(y, dy, leaves)

    def upsample_nearest2d(self, x, scale_factor):
        return self.F.interpolate(x, scale_factor=scale_factor, mode="nearest")

    def upsample_nearest2d_train(self, x, dy, scale_factor):
        leaves = self._leaves(x)
        y = self.F.interpolate(leaves[0], scale_factor=scale_factor, mode="nearest")
        return self._backward(y, dy, leaves)

    def upsample_bilinear2d(self, x, scale_factor, align_corners):
        return self.F.interpolate(x, scale_factor=scale_factor, mode="bilinear",
                                  align_corners=align_corners)

    def upsample_bilinear2d_train(self, x, dy, scale_factor, align_corners):
        leaves = self._leaves(x)
        y = self.F.interpolate(leaves[0], scale_factor=scale_factor, mode="bilinear",
                               align_corners=align_corners)
        return self._backward(y, dy, leaves)

    def matmul(self, a, b):
        return a @ b

    def linear(self, x, weight, bias):
        return self.F.linear(x, weight, bias)

    def linear_train(self, x, weight, bias, dy):
        leaves = self._leaves(x, weight, bias)
        return self._backward(self.F.linear(*leaves), dy, leaves)

    def predict(self, x, y, **weights):
        model, _ = self._model(weights, 1e-3)
        model.eval()
        x = self.put(x)

        def call():
            with self.torch.no_grad():
                return model(x)
        return call

    def _model(self, weights, lr):
        self.torch   # set up before the model reaches the device
        return training.torch_model(weights, lr, self.device)

    def train_step(self, x, y, lr, **weights):
        model, optimizer = self._model(weights, lr)
        params = list(model.parameters())
        x, y = self.put(x), self.put(y)   # the batch waits on the device

        def step():
            loss, _ = training.torch_step(model, optimizer, x, y)
            return (loss.detach(),) + tuple(p.grad for p in params)
        return step

    def train_epoch(self, x, y, lr, batch_size, shuffle_seed, **weights):
        model, optimizer = self._model(weights, lr)
        batches = training.shuffled(x, y, batch_size, shuffle_seed)
        return lambda: (training.torch_epoch(model, optimizer, batches, self.device),)


def all_implementations():
    """Every implementation the suite knows, in the order the table shows them."""
    from .onnxruntime_impl import OnnxRuntime
    return [Fastcnn("cpu"), Fastcnn("cuda"), Torch("cpu"), Torch("cuda"), OnnxRuntime(),
            NumPy(), Fastcnn("reference")]
