"""The registry: every benchmark is one Case entry.

A case names a step that every implementation offers (see impls.py), the
shapes of the arrays it takes (random float32, made by ``inputs``), its other
arguments, and how to count its work: floating-point operations for convolution
and matrix products (reported as GFLOP/s), else the bytes of every array read
or written once (GB/s). Each case carries a tiny twin with the same structure
(``Case.shrunk()``), so the test suite runs every case in a blink.

Adding an op or a shape is one entry in CASES. A case with inputs that are not
random arrays gives its own ``make_inputs``: the training cases (one step and
one epoch of the seed MNIST CNN, training.py) take the real digits and the
starting weights that way, and their step builds the model once and returns the
call to time (``trains``).
"""

import dataclasses
import math
from typing import Callable, Optional

import numpy as np

from fastcnn.backends import output_size, transposed_output_size

from . import training


@dataclasses.dataclass(frozen=True)
class Case:
    name: str                      # unique, what --only matches
    step: str                      # the implementation method it calls
    arrays: dict                   # argument name -> shape of a random float32 array
    params: dict                   # the other arguments, same for every implementation
    describe: str                  # the shapes, for people
    flops: int = 0                 # operations of one call; 0: rate in GB/s instead
    quick: bool = True             # part of --quick
    reference: bool = True         # time the naive reference (small shapes only)
    memory: bool = False           # measure the peak memory of one call
    full: bool = True              # part of the full run
    images: int = 0                # images one call trains on: rate in images/s
    trains: bool = False           # step(**inputs) builds a model, returns the call to time
    tiny: Optional["Case"] = None  # the same case on tiny shapes, for tests
    make_inputs: Optional[Callable] = None  # make_inputs(case, rng, mnist) -> dict of arguments

    def inputs(self, rng, mnist=None):
        """The array arguments: standard-normal float32 unless the case makes its own
        (mnist: the folder of the real digits for the training cases, None: random images)."""
        if self.make_inputs is not None:
            return self.make_inputs(self, rng, mnist)
        return {name: rng.standard_normal(shape, dtype=np.float32)
                for name, shape in self.arrays.items()}

    def shrunk(self):
        return self.tiny


def _with_tiny(case, tiny):
    """case, carrying its tiny twin under the same name (so --only and find work on both)."""
    return dataclasses.replace(case, tiny=dataclasses.replace(tiny, name=case.name))


def _x(shape):
    return "x".join(map(str, shape))


def _conv_shapes(x, w, stride, padding):
    n, c, h, wd = x
    k, _, kh, kw = w
    oh, ow = (output_size(h, kh, stride, (padding, padding)),
              output_size(wd, kw, stride, (padding, padding)))
    return n, c, k, kh, kw, oh, ow


def _tiny_conv(x, w, stride, padding):
    """Two small images, at most 3 channels in and 4 out, sized for a 3x3 output."""
    c, k, kh = min(x[1], 3), min(w[0], 4), w[2]
    side = max(kh + 2 * stride - 2 * padding, 1)
    return (2, c, side, side), (k, c, kh, w[3])


# conv2d's parts: part -> (name, step, the forwards' worth of work one call does).
CONV_PARTS = {
    "forward": ("conv2d", "conv2d", 1),
    "dx": ("conv2d dx", "conv2d_dx", 1),               # the input gradient alone
    "dweight": ("conv2d dweight", "conv2d_dweight", 1),  # the weight and bias gradients
    "train": ("conv2d+bwd", "conv2d_train", 3),        # forward, then dx and dweight
}


def conv2d(label, x, w, stride, padding, part="forward", tiny=False, **flags):
    """One part of conv2d of x by weight w, with a bias (see CONV_PARTS): the forward, a
    gradient for dy, or forward + backward. Each gradient counts a forward's operations
    (the products are the same, rearranged)."""
    n, c, k, kh, kw, oh, ow = _conv_shapes(x, w, stride, padding)
    prefix, step, forwards = CONV_PARTS[part]
    arrays = {"x": x, "weight": w}
    if part in ("forward", "train"):
        arrays["bias"] = (k,)
    if part != "forward":
        arrays["dy"] = (n, k, oh, ow)
    case = Case(
        name=f"{prefix} {label}", step=step, arrays=arrays,
        params={"stride": (stride, stride), "padding": (padding, padding)},
        describe=f"{_x(x)} * {_x(w)}" + (f" s{stride}" if stride > 1 else "")
                 + (f" p{padding}" if padding else ""),
        flops=forwards * 2 * n * k * oh * ow * c * kh * kw, memory=part == "train", **flags)
    if tiny:
        return case
    tx, tw = _tiny_conv(x, w, stride, padding)
    return _with_tiny(case, conv2d(label, tx, tw, stride, padding, part, True))


def grouped_conv2d(x, w, padding, groups, train, tiny=False, **flags):
    """conv2d with groups, with a bias (or forward + backward): depthwise when every input
    channel is its own group (weight K x 1 x kh x kw), else grouped as in ResNeXt."""
    n, c, k, kh, kw, oh, ow = _conv_shapes(x, w, 1, padding)
    depthwise = groups == c and w[1] == 1
    arrays = {"x": x, "weight": w, "bias": (k,)}
    if train:
        arrays["dy"] = (n, k, oh, ow)
    forward = 2 * n * k * oh * ow * w[1] * kh * kw   # each output sees C/groups channels
    op = "depthwise_conv2d" if depthwise else "grouped_conv2d"
    case = Case(name=f"{op}{'+bwd' if train else ''} {_x(x)}",
                step="grouped_conv2d_train" if train else "grouped_conv2d", arrays=arrays,
                params={"stride": (1, 1), "padding": (padding, padding), "groups": groups},
                describe=f"{_x(x)} * {_x(w)}" + (f" p{padding}" if padding else "")
                         + f" groups={groups}",
                flops=3 * forward if train else forward, **flags)
    if tiny:
        return case
    side = max(kh + 2 - 2 * padding, 1)   # a 3x3 output
    if depthwise:   # three channels, each its own group
        tx, tw, g = (2, 3, side, side), (3, 1, kh, kw), 3
    else:           # two groups of two channels
        tx, tw, g = (2, 4, side, side), (4, 2, kh, kw), 2
    return _with_tiny(case, grouped_conv2d(tx, tw, padding, g, train, True))


def conv_transpose2d(x, w, stride, padding, train, tiny=False, **flags):
    """Transposed convolution of x by w (input channels first), with a bias (or forward +
    backward): DCGAN's upsampling layer."""
    n, c, h, wd = x
    _, k, kh, kw = w
    oh, ow = (transposed_output_size(h, kh, stride, (padding, padding)),
              transposed_output_size(wd, kw, stride, (padding, padding)))
    arrays = {"x": x, "weight": w, "bias": (k,)}
    if train:
        arrays["dy"] = (n, k, oh, ow)
    forward = 2 * n * h * wd * c * k * kh * kw   # every input pixel meets every tap
    case = Case(name=f"conv_transpose2d{'+bwd' if train else ''} {_x(x)}",
                step="conv_transpose2d_train" if train else "conv_transpose2d", arrays=arrays,
                params={"stride": (stride, stride), "padding": (padding, padding)},
                describe=f"{_x(x)} * {_x(w)} s{stride} p{padding} -> {_x((n, k, oh, ow))}",
                flops=3 * forward if train else forward, **flags)
    if tiny:
        return case
    return _with_tiny(case, conv_transpose2d((2, 3, 3, 3), (3, 4, kh, kw), stride, padding,
                                             train, True))


def im2col(label, x, w, stride, padding, fold, tiny=False, **flags):
    """im2col (unfold) of x for w's kernel, or col2im (fold) of the columns back."""
    n, c, _, kh, kw, oh, ow = _conv_shapes(x, w, stride, padding)
    params = {"kernel_size": (kh, kw), "stride": (stride, stride), "padding": (padding, padding)}
    if fold:
        arrays, params = {"cols": (n, c * kh * kw, oh * ow)}, {"input_shape": x, **params}
    else:
        arrays = {"x": x}
    case = Case(name=f"{'col2im' if fold else 'im2col'} {label}",
                step="col2im" if fold else "im2col", arrays=arrays, params=params,
                describe=f"{_x(x)}, {kh}x{kw} kernel" + (f" p{padding}" if padding else ""),
                **flags)
    if tiny:
        return case
    tx, tw = _tiny_conv(x, w, stride, padding)
    return _with_tiny(case, im2col(label, tx, tw, stride, padding, fold, True))


def pool(kind, x, size, train, tiny=False, **flags):
    """max or avg pooling, size x size windows with stride size (or forward + backward)."""
    n, c, h, w = x
    arrays = {"x": x}
    if train:
        arrays["dy"] = (n, c, h // size, w // size)
    op = f"{kind}_pool2d"
    case = Case(name=f"{op}{'+bwd' if train else ''} {_x(x)}",
                step=f"{op}_train" if train else op, arrays=arrays,
                params={"kernel_size": (size, size)},
                describe=f"{_x(x)}, {size}x{size} stride {size}", **flags)
    if tiny:
        return case
    return _with_tiny(case, pool(kind, (2, 3, 2 * size, 2 * size), size, train, True))


def adaptive_pool(x, size, train, tiny=False, **flags):
    """Adaptive average pooling of x to size x size (or forward + backward); size 1 is
    global pooling."""
    n, c, h, w = x
    arrays = {"x": x}
    if train:
        arrays["dy"] = (n, c, size, size)
    case = Case(name=f"adaptive_avg_pool2d{'+bwd' if train else ''} {_x(x)}->{size}x{size}",
                step="adaptive_avg_pool2d_train" if train else "adaptive_avg_pool2d",
                arrays=arrays, params={"output_size": (size, size)},
                describe=f"{_x(x)} -> {_x((n, c, size, size))}", **flags)
    if tiny:
        return case
    return _with_tiny(case, adaptive_pool((2, 3, h, w), size, train, True))


def ceil_pool(x, size, stride, train, tiny=False, **flags):
    """max pooling with ceil_mode, size x size windows overlapping at stride (or forward +
    backward): GoogLeNet's MaxPool2d(3, stride=2, ceil_mode=True)."""
    n, c, h, w = x
    oh, ow = (output_size(h, size, stride, ceil_mode=True),
              output_size(w, size, stride, ceil_mode=True))
    arrays = {"x": x}
    if train:
        arrays["dy"] = (n, c, oh, ow)
    case = Case(name=f"max_pool2d{'+bwd' if train else ''} ceil {_x(x)}",
                step="max_pool2d_ceil_train" if train else "max_pool2d_ceil", arrays=arrays,
                params={"kernel_size": (size, size), "stride": (stride, stride)},
                describe=f"{_x(x)}, {size}x{size} stride {stride}, ceil_mode -> {oh}x{ow}",
                **flags)
    if tiny:
        return case
    return _with_tiny(case, ceil_pool((2, 3, 2 * size, 2 * size), size, stride, train, True))


def max_pool_infer(x, size, tiny=False, **flags):
    """max pooling for inference: y alone, no arg-max positions (what an eval-mode forward
    needs; ONNX Runtime's case, issue 16)."""
    case = Case(name=f"max_pool2d infer {_x(x)}", step="max_pool2d_infer", arrays={"x": x},
                params={"kernel_size": (size, size)},
                describe=f"{_x(x)}, {size}x{size} stride {size}, y only", **flags)
    if tiny:
        return case
    return _with_tiny(case, max_pool_infer((2, 3, 2 * size, 2 * size), size, True))


def upsample(x, scale, train, tiny=False, **flags):
    """Nearest-neighbour upsampling by scale (or forward + backward)."""
    n, c, h, w = x
    arrays = {"x": x}
    if train:
        arrays["dy"] = (n, c, h * scale, w * scale)
    case = Case(name=f"upsample_nearest2d{'+bwd' if train else ''} {_x(x)}",
                step="upsample_nearest2d_train" if train else "upsample_nearest2d",
                arrays=arrays, params={"scale_factor": (scale, scale)},
                describe=f"{_x(x)} -> {_x((n, c, h * scale, w * scale))}", **flags)
    if tiny:
        return case
    return _with_tiny(case, upsample((2, 3, 3, 3), scale, train, True))


def resample(mode, x, scale, train, align_corners=False, tiny=False, **flags):
    """Nearest or bilinear resampling by a (non-integer) scale factor, PyTorch's
    F.interpolate (or forward + backward)."""
    n, c, h, w = x
    y = (n, c, math.floor(h * scale), math.floor(w * scale))
    arrays = {"x": x, "dy": y} if train else {"x": x}
    params = {"scale_factor": (scale, scale)}
    if mode == "bilinear":
        params["align_corners"] = align_corners
    op = f"upsample_{mode}2d"
    case = Case(name=f"{op}{'+bwd' if train else ''} {_x(x)} x{scale}",
                step=f"{op}_train" if train else op, arrays=arrays, params=params,
                describe=f"{_x(x)} -> {_x(y)}" + (", align_corners" if align_corners else ""),
                reference=False, **flags)   # the reference's scatter takes seconds here
    if tiny:
        return case
    return _with_tiny(case, resample(mode, (2, 3, 3, 3), scale, train, align_corners, True))


def matmul(m, k, n, tiny=False, **flags):
    case = Case(name=f"matmul {m}x{k}x{n}", step="matmul", arrays={"a": (m, k), "b": (k, n)},
                params={}, describe=f"({m}x{k}) @ ({k}x{n})", flops=2 * m * k * n,
                reference=False, **flags)  # the reference's broadcast product needs m*k*n floats
    if tiny:
        return case
    return _with_tiny(case, matmul(8, 8, 8, True))


def linear(batch, fin, fout, train, tiny=False, **flags):
    arrays = {"x": (batch, fin), "weight": (fout, fin), "bias": (fout,)}
    if train:
        arrays["dy"] = (batch, fout)
    forward = 2 * batch * fin * fout
    case = Case(name=f"linear{'+bwd' if train else ''} {batch}x{fin}->{fout}",
                step="linear_train" if train else "linear", arrays=arrays, params={},
                describe=f"batch {batch}, {fin} -> {fout} features",
                flops=3 * forward if train else forward, **flags)
    if tiny:
        return case
    return _with_tiny(case, linear(4, 16, 3, train, True))


def seed_cnn(images, epoch, batch=100, side=28, channels=(32, 64), tiny=False, **flags):
    """One training step of the seed MNIST CNN on a batch of images (forward, loss,
    backward, Adam step), or one epoch over images in shuffled batches."""
    params = {"lr": 1e-3}
    if epoch:
        params.update(batch_size=batch, shuffle_seed=0)
    case = Case(name=f"seed_cnn epoch {images}" if epoch else "seed_cnn train_step",
                step="train_epoch" if epoch else "train_step",
                arrays=training.shapes(images, side, channels), params=params,
                describe=(f"{images:,} images {side}x{side}, batch {batch}" if epoch
                          else f"batch {images}x1x{side}x{side}") + ", Adam",
                images=images, reference=False, trains=True, make_inputs=training.inputs,
                **flags)
    if tiny:
        return case
    return _with_tiny(case, seed_cnn(2 * 8 if epoch else 8, epoch, 8, 8, (4, 8), True))


def seed_cnn_predict(images, side=28, channels=(32, 64), tiny=False, **flags):
    """The seed CNN's eval-mode forward of a batch (logits): inference, issue 16."""
    case = Case(name=f"seed_cnn predict {images}", step="predict",
                arrays=training.shapes(images, side, channels), params={},
                describe=f"batch {images}x1x{side}x{side}, eval mode", images=images,
                reference=False, trains=True, make_inputs=training.inputs, **flags)
    if tiny:
        return case
    return _with_tiny(case, seed_cnn_predict(min(images, 2), 8, (4, 8), True))


# The convolutions of the issue: (x, weight, stride, padding).
CONVS = {
    "A": ((100, 1, 28, 28), (32, 1, 3, 3), 1, 1),        # MNIST first layer
    "B": ((100, 32, 14, 14), (64, 32, 3, 3), 1, 1),      # MNIST second layer
    "C": ((64, 64, 32, 32), (128, 64, 3, 3), 1, 1),      # a CIFAR-sized middle layer
    "D": ((16, 3, 227, 227), (96, 3, 11, 11), 4, 0),     # AlexNet's first layer
}
SMALL = ("A", "B")  # the reference is timed on these only; on C and D it takes seconds

CASES = [
    *[conv2d(label, *CONVS[label], part, reference=label in SMALL)
      for part in CONV_PARTS for label in CONVS],
    *[im2col(label, *CONVS[label], fold=fold, reference=label in SMALL)
      for fold in (False, True) for label in ("B", "C")],
    *[pool(kind, x, 2, train) for kind in ("max", "avg") for train in (False, True)
      for x in ((100, 32, 28, 28), (64, 128, 32, 32))],
    max_pool_infer((100, 32, 28, 28), 2),
    *[upsample((64, 128, 16, 16), 2, train) for train in (False, True)],
    *[resample("bilinear", (16, 64, 64, 64), 2, train) for train in (False, True)],
    resample("nearest", (16, 64, 64, 64), 1.5, train=True),
    # ResNet's global pooling and AlexNet's adaptive one (issue 13)
    *[adaptive_pool(x, size, train, reference=False) for x, size in
      (((64, 512, 7, 7), 1), ((64, 256, 13, 13), 6)) for train in (False, True)],
    *[ceil_pool((16, 64, 112, 112), 3, 2, train, reference=False) for train in (False, True)],
    # issue 16's new ops: depthwise (issue 13's case), ResNeXt's grouped, DCGAN's transposed
    *[grouped_conv2d((16, 512, 14, 14), (512, 1, 3, 3), 1, 512, train, reference=False)
      for train in (False, True)],
    grouped_conv2d((32, 128, 28, 28), (128, 4, 3, 3), 1, 32, False, reference=False),
    # The full run only: PyTorch CPU's grouped weight gradient takes seconds here.
    grouped_conv2d((32, 128, 28, 28), (128, 4, 3, 3), 1, 32, True, reference=False, quick=False),
    *[conv_transpose2d((64, 128, 16, 16), (128, 64, 4, 4), 2, 1, train, reference=False)
      for train in (False, True)],
    matmul(1024, 1024, 1024),
    matmul(2048, 2048, 2048, full=False),   # --quick's sgemm ceiling
    matmul(4096, 4096, 4096, quick=False),
    *[linear(100, 3136, 10, train) for train in (False, True)],
    seed_cnn(100, epoch=False),
    seed_cnn_predict(100),
    seed_cnn_predict(1),
    seed_cnn(1000, epoch=True, full=False),   # --quick's short epoch
    seed_cnn(8000, epoch=True, quick=False),  # the whole training split
]


# The machine's sgemm ceiling: the best CPU rate on a large square float32 product, measured
# in the same run (--quick: 2048^3, the full run: 4096^3); the conv cases' rates are shown
# as a share of it. A run of conv cases without that matmul case gets it added.
CEILING = {True: "matmul 2048x2048x2048", False: "matmul 4096x4096x4096"}   # by --quick
CEILING_STEPS = {step for _, step, _ in CONV_PARTS.values()}


def with_ceiling(chosen, quick, tiny=False):
    """chosen, and at its end the sgemm ceiling's case if a conv case is there without it."""
    name = CEILING[bool(quick)]
    if any(c.step in CEILING_STEPS for c in chosen) and name not in [c.name for c in chosen]:
        return chosen + [find(name, tiny)]
    return chosen


@dataclasses.dataclass(frozen=True)
class Target:
    """A speed goal from the project's issues: impl's speedup over baseline (its time /
    impl's) at least this much, or with baseline "gflops" impl's rate at least speedup
    GFLOP/s. Reported met or not; never asserted in a test."""
    impl: str
    baseline: str  # "torch" (same device), "onnxruntime", "numpy", "reference" or "gflops"
    speedup: float
    goal: str      # the goal as the issue words it


BEATS_TORCH = Target("fastcnn-cpu", "torch", 1.25, ">= 1.25x PyTorch CPU (#16)")
BEATS_ORT = Target("fastcnn-cpu", "onnxruntime", 1.0, ">= 1.0x ONNX Runtime (#16)")

TARGETS = {
    **{f"conv2d {label}": [BEATS_ORT, BEATS_TORCH] for label in CONVS},
    "conv2d+bwd A": [Target("fastcnn-cpu", "torch", 1 / 0.7, "<= 0.7x PyTorch's time (#3)"),
                     BEATS_TORCH],
    "conv2d+bwd B": [Target("fastcnn-cpu", "torch", 1.0, "<= 1.0x PyTorch's time (#3)"),
                     BEATS_TORCH,
                     Target("fastcnn-cpu", "gflops", 100.0,
                            ">= 100 GFLOP/s counted as direct convolution (#16)")],
    "conv2d+bwd C": [Target("fastcnn-cuda", "torch", 0.5, "<= 2x cuDNN's time (#5)"),
                     BEATS_TORCH],
    "conv2d+bwd D": [BEATS_TORCH],
    **{name: [BEATS_ORT] for name in ("max_pool2d infer 100x32x28x28", "seed_cnn predict 100")},
    "seed_cnn predict 1": [
        Target("fastcnn-cpu", "onnxruntime", 0.5, "within 2x of ONNX Runtime (#16)")],
    "max_pool2d+bwd 100x32x28x28": [
        Target("fastcnn-cpu", "torch", 2.0, "<= 0.5x PyTorch's time (#3)")],
    "upsample_bilinear2d+bwd 16x64x64x64 x2": [
        Target("fastcnn-cpu", "torch", 1.5, ">= 1.5x PyTorch CPU (#13)")],
    **{f"adaptive_avg_pool2d+bwd {shape}": [
        Target("fastcnn-cpu", "torch", 1.5, ">= 1.5x PyTorch CPU (#13)")]
       for shape in ("64x512x7x7->1x1", "64x256x13x13->6x6")},
    "matmul 1024x1024x1024": [Target("fastcnn-cpu", "numpy", 0.9, ">= 0.9x NumPy's GFLOP/s (#3)")],
    "matmul 4096x4096x4096": [Target("fastcnn-cuda", "torch", 0.5, ">= 50% of cuBLAS (#5)")],
    **{f"seed_cnn epoch {n}": [
        Target("fastcnn-cpu", "torch", 1 / 0.9, "epoch <= 0.9x PyTorch CPU's time (#4)"),
        Target("fastcnn-cpu", "torch", 1.3, "epoch >= 1.3x PyTorch CPU (#16)"),
        Target("fastcnn-cuda", "torch", 1 / 1.5, "epoch <= 1.5x PyTorch CUDA's time (#5)")]
       for n in (1000, 8000)},
}


def select(quick=False, only=None, tiny=False):
    """The cases to run: the full run's (quick=False), --quick's (True) or all (None),
    filtered by --only's substrings."""
    chosen = [c for c in CASES if quick is None or (c.quick if quick else c.full)]
    if only:
        wanted = [w.strip().lower() for w in only if w.strip()]
        chosen = [c for c in chosen if any(w in c.name.lower() for w in wanted)]
    return [c.shrunk() for c in chosen] if tiny else chosen


def find(name, tiny=False):
    """The case called name (its tiny twin with tiny=True)."""
    for case in CASES:
        if case.name == name:
            return case.shrunk() if tiny else case
    raise KeyError(f"no benchmark case called {name!r}")
