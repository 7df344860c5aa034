"""The layers of the conv, pool, resample and softmax families against PyTorch's modules
(where torch is installed): the same arguments, defaults and weight layouts, and in
float64 the same output, dx and parameter gradients, on fixed seeds. Finite
differences of the same layers are in test_layers.py (LAYER_CASES)."""

import inspect
import math
import zlib

import numpy as np
import pytest

from fastcnn import init, nn


@pytest.fixture(scope="module")
def torch():
    """torch on one thread (its pool would spin against the kernels' OpenMP threads)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


F64 = dict(dtype=np.float64)

# name: (fastcnn layer, the torch module's name and arguments, input shape, input kind)
CASES = {
    "Conv2d grouped": (lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2, **F64),
                       ("Conv2d", (4, 6, 3), dict(padding=1, groups=2)), (2, 4, 7, 6)),
    "Conv2d depthwise": (lambda: nn.Conv2d(3, 6, (3, 2), stride=2, dilation=(1, 2), groups=3,
                                           **F64),
                         ("Conv2d", (3, 6, (3, 2)), dict(stride=2, dilation=(1, 2), groups=3)),
                         (2, 3, 8, 9)),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1,
                                                   output_padding=1, groups=2, **F64),
                        ("ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1,
                                                            output_padding=1, groups=2)),
                        (2, 4, 4, 5)),
    "ConvTranspose2d dilated": (lambda: nn.ConvTranspose2d(3, 2, (2, 3), stride=(1, 2),
                                                           dilation=2, bias=False, **F64),
                                ("ConvTranspose2d", (3, 2, (2, 3)),
                                 dict(stride=(1, 2), dilation=2, bias=False)), (2, 3, 4, 3)),
    "Conv1d": (lambda: nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2, **F64),
               ("Conv1d", (4, 6, 3), dict(stride=2, padding=2, dilation=2, groups=2)),
               (2, 4, 11)),
    "Conv1d same": (lambda: nn.Conv1d(2, 3, 4, padding="same", **F64),
                    ("Conv1d", (2, 3, 4), dict(padding="same")), (2, 2, 9)),
    "MaxPool2d ceil": (lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True),
                       ("MaxPool2d", (3, 2, 1), dict(ceil_mode=True)), (2, 3, 8, 7)),
    "MaxPool2d dilated": (lambda: nn.MaxPool2d(2, 1, dilation=(2, 3)),
                          ("MaxPool2d", (2, 1), dict(dilation=(2, 3))), (2, 3, 7, 8)),
    "AvgPool2d exclude pad": (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True,
                                                   count_include_pad=False),
                              ("AvgPool2d", (3, 2, 1), dict(ceil_mode=True,
                                                            count_include_pad=False)),
                              (2, 3, 8, 7)),
    "AvgPool2d divisor": (lambda: nn.AvgPool2d((2, 3), divisor_override=4),
                          ("AvgPool2d", ((2, 3),), dict(divisor_override=4)), (2, 3, 6, 7)),
    "MaxPool1d": (lambda: nn.MaxPool1d(3, 2, 1, ceil_mode=True),
                  ("MaxPool1d", (3, 2, 1), dict(ceil_mode=True)), (2, 3, 10)),
    "AvgPool1d": (lambda: nn.AvgPool1d(4, 3, 2, count_include_pad=False),
                  ("AvgPool1d", (4, 3, 2), dict(count_include_pad=False)), (2, 3, 11)),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((3, 5)),
                          ("AdaptiveAvgPool2d", ((3, 5),), {}), (2, 3, 7, 9)),
    "AdaptiveAvgPool2d global": (lambda: nn.AdaptiveAvgPool2d(1),
                                 ("AdaptiveAvgPool2d", (1,), {}), (2, 3, 5, 4)),
    "AdaptiveMaxPool2d": (lambda: nn.AdaptiveMaxPool2d((4, None)),
                          ("AdaptiveMaxPool2d", ((4, None),), {}), (2, 3, 9, 5)),
    "AdaptiveAvgPool1d": (lambda: nn.AdaptiveAvgPool1d(4),
                          ("AdaptiveAvgPool1d", (4,), {}), (2, 3, 10)),
    "AdaptiveMaxPool1d": (lambda: nn.AdaptiveMaxPool1d(3),
                          ("AdaptiveMaxPool1d", (3,), {}), (2, 3, 8)),
    "Upsample bilinear": (lambda: nn.Upsample(scale_factor=1.7, mode="bilinear"),
                          ("Upsample", (), dict(scale_factor=1.7, mode="bilinear")),
                          (2, 3, 4, 5)),
    "Upsample bilinear corners": (lambda: nn.Upsample((5, 9), mode="bilinear",
                                                      align_corners=True),
                                  ("Upsample", ((5, 9),), dict(mode="bilinear",
                                                               align_corners=True)),
                                  (2, 3, 4, 5)),
    "Upsample bilinear down": (lambda: nn.Upsample(scale_factor=(0.6, 1.5), mode="bilinear"),
                               ("Upsample", (), dict(scale_factor=(0.6, 1.5),
                                                     mode="bilinear")), (2, 3, 7, 4)),
    "Upsample nearest": (lambda: nn.Upsample(scale_factor=1.5),
                         ("Upsample", (), dict(scale_factor=1.5)), (2, 3, 4, 5)),
    "Softmax": (lambda: nn.Softmax(-1), ("Softmax", (-1,), {}), (2, 3, 5)),
    "LogSoftmax": (lambda: nn.LogSoftmax(), ("LogSoftmax", (1,), {}), (4, 7)),
    "LogSoftmax dim 0": (lambda: nn.LogSoftmax(0), ("LogSoftmax", (0,), {}), (4, 3, 2)),
    "Flatten": (lambda: nn.Flatten(1, 2), ("Flatten", (1, 2), {}), (2, 3, 4, 5)),
    "Unflatten": (lambda: nn.Unflatten(-2, (2, -1)), ("Unflatten", (-2, (2, -1)), {}),
                  (2, 3, 6, 5)),
}


def _module(torch, layer, spec):
    """The torch module of spec, with layer's parameters."""
    name, args, kwargs = spec
    module = getattr(torch.nn, name)(*args, **kwargs).double()
    with torch.no_grad():
        for key, value in layer.params.items():
            getattr(module, key).copy_(torch.from_numpy(np.array(value)))
    return module


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_as_pytorch(torch, case):
    make, spec, shape = CASES[case]
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    layer = make()
    module = _module(torch, layer, spec)
    x = rng.permutation(math.prod(shape)).reshape(shape) * 0.01   # distinct: one arg-max
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    y = layer.forward(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for key, grad in layer.grads.items():
        np.testing.assert_allclose(grad, getattr(module, key).grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=key)


# PyTorch's defaults that differ here, and why.
DIFFERENT_DEFAULTS = {("Softmax", "dim"): 1, ("LogSoftmax", "dim"): 1}   # torch: None (by rank)


@pytest.mark.parametrize("name", sorted(set(nn.LAYERS) - {"Maxout", "Add", "Concat", "Multiply"}))
def test_arguments_and_defaults_are_pytorchs(torch, name):
    """A layer's arguments are the first of its PyTorch module's, in the same order, with
    the same defaults (dtype and rng come after, by keyword only)."""
    ours = [p for p in inspect.signature(nn.LAYERS[name]).parameters.values()
            if p.kind == p.POSITIONAL_OR_KEYWORD]
    theirs = list(inspect.signature(getattr(torch.nn, name)).parameters.values())
    assert [p.name for p in ours] == [p.name for p in theirs[:len(ours)]]
    for p, q in zip(ours, theirs):
        want = DIFFERENT_DEFAULTS.get((name, p.name), q.default)
        assert p.default == want or (p.default is p.empty and q.default is q.empty), p.name


@pytest.mark.parametrize("make, spec", [
    (lambda: nn.Conv2d(8, 6, (3, 2), groups=2), ("Conv2d", (8, 6, (3, 2)), dict(groups=2))),
    (lambda: nn.ConvTranspose2d(8, 6, 3, groups=2),
     ("ConvTranspose2d", (8, 6, 3), dict(groups=2))),
    (lambda: nn.Conv1d(4, 8, 5, groups=4), ("Conv1d", (4, 8, 5), dict(groups=4))),
])
def test_weight_layout_and_init_are_pytorchs(torch, make, spec):
    """The same parameter shapes as PyTorch's, drawn from the same bound: 1/sqrt(fan_in),
    fan_in = weight.shape[1] * kernel (for ConvTranspose2d out/groups * kernel, PyTorch's
    rule for its (in, out/groups, ...) weight). Both draws are seeded: the max of a few
    bias values falls below 0.6 of the bound one time in four, so unseeded the test
    passed or failed with the cases that ran before it."""
    init.seed(0)
    torch.manual_seed(0)
    layer = make()
    module = getattr(torch.nn, spec[0])(*spec[1], **spec[2])
    for key, value in layer.params.items():
        theirs = getattr(module, key).detach().numpy()
        assert value.shape == theirs.shape, key
        bound = 1 / math.sqrt(math.prod(layer.params["weight"].shape[1:]))
        for values in (value, theirs):
            assert np.abs(values).max() <= bound and np.abs(values).max() > 0.6 * bound, key


@pytest.mark.parametrize("make, x, match", [
    (lambda: nn.ConvTranspose2d(4, 6, 3, groups=2), np.zeros((2, 3, 5, 5)),
     r"^ConvTranspose2d\(4, 6, 3, groups=2\): expects 4 channels or features on axis 1 "
     r"\(input \(N, 4, H, W\)\), got shape \(2, 3, 5, 5\)"),
    (lambda: nn.Conv1d(2, 2, 3), np.zeros((2, 2, 5, 5)),
     r"^Conv1d\(2, 2, 3\): expects input \(N, 2, L\), got shape \(2, 2, 5, 5\)"),
    (lambda: nn.ConvTranspose2d(2, 2, 3, padding=2, **F64), np.zeros((1, 2, 1, 1)),
     r"^ConvTranspose2d\(2, 2, 3, padding=2\): conv_transpose2d: the output would be -1x-1"),
    (lambda: nn.MaxPool1d(4), np.zeros((2, 3, 3)),
     r"^MaxPool1d\(4\): max_pool1d: the kernel .* larger than the padded input"),
    (lambda: nn.AdaptiveAvgPool2d(2), np.zeros((2, 3, 4)),
     r"^AdaptiveAvgPool2d\(2\): adaptive_avg_pool2d: x must be 4-D"),
    (lambda: nn.Upsample(scale_factor=0.1, mode="bilinear"), np.zeros((1, 1, 4, 4)),
     r"^Upsample\(scale_factor=0.1, mode='bilinear'\): upsample_bilinear2d: "
     r"scale_factor=\(0.1, 0.1\) leaves no pixels"),
    (lambda: nn.LogSoftmax(2), np.zeros((2, 3)),
     r"^LogSoftmax\(dim=2\): log_softmax: dim must be in \[-2, 2\)"),
    (lambda: nn.Flatten(2, 1), np.zeros((2, 3, 4)),
     r"^Flatten\(start_dim=2, end_dim=1\): start_dim 2 comes after end_dim 1"),
    (lambda: nn.Flatten(3), np.zeros((2, 3, 4)),
     r"^Flatten\(start_dim=3\): start_dim must be in \[-3, 3\) for an input of shape "
     r"\(2, 3, 4\), got 3"),
    (lambda: nn.Unflatten(1, (2, 2)), np.zeros((2, 5)),
     r"^Unflatten\(1, \(2, 2\)\): unflattened_size \(2, 2\) does not hold the 5 entries of "
     r"axis 1"),
])
def test_errors_name_the_layer(make, x, match):
    with pytest.raises(ValueError, match=match):
        make().forward(x)
