"""What layers check, and where: constructors check every argument with functional's
rules; backward checks dy against what forward returned; every other check is
functional's, and the layer's name is added to its message once. need_dx means the
same for every layer; shared code is no inheritance; reused arrays follow the
shapes functional computes and never overwrite what a caller holds."""

import re

import numpy as np
import pytest

from fastcnn import nn
from fastcnn.model import Sequential
from test_layers import LAYER_CASES, forward, make_input


@pytest.mark.parametrize("make, error, match", [
    (lambda: nn.MaxPool2d(2, stride=0), ValueError, "MaxPool2d: stride must be >= 1, got 0"),
    (lambda: nn.AvgPool2d(0), ValueError, "AvgPool2d: kernel_size must be >= 1, got 0"),
    (lambda: nn.MaxPool2d(2, padding=2), ValueError,
     r"MaxPool2d: padding \(2, 2, 2, 2\) \(top, bottom, left, right\) must be at most half"),
    (lambda: nn.Conv2d(1, 1, 3, stride=2, padding="same"), ValueError,
     "Conv2d: padding='same' needs stride 1"),
    (lambda: nn.Conv2d(1, 1, 3, padding="full"), ValueError,
     "Conv2d: padding must be an int, a pair, a 4-tuple or one of"),
    (lambda: nn.AvgPool2d(3, padding=(1, 1, 1)), ValueError,
     r"AvgPool2d: padding must be an int, \(h, w\), \(top, bottom, left, right\)"),
    (lambda: nn.AvgPool2d((2, 2, 2)), ValueError, "AvgPool2d: kernel_size must be an int or a"),
    (lambda: nn.Maxout(0), ValueError, "Maxout: pool_size must be >= 1, got 0"),
    (lambda: nn.Maxout(2.0), TypeError, "Maxout: pool_size must be an int, got 2.0"),
    (lambda: nn.Conv2d(1, 1, 3, stride=None), TypeError, "Conv2d: stride must be an int, got None"),
    (lambda: nn.Conv2d(1, 1, 2**63), ValueError, "Conv2d: kernel_size must be <= 2,147,483,647"),
    (lambda: nn.Conv2d(1, 1, 3, dilation=0), ValueError, "Conv2d: dilation must be >= 1"),
    (lambda: nn.Conv2d(0, 1, 3), ValueError, "Conv2d: in_channels must be >= 1, got 0"),
    (lambda: nn.Conv2d(1, 1, 3, bias="yes"), TypeError, "Conv2d: bias must be True or False"),
    (lambda: nn.Linear(0, 3), ValueError, "Linear: in_features must be >= 1, got 0"),
    (lambda: nn.Linear(2, 2.5), TypeError, "Linear: out_features must be an int, got 2.5"),
    (lambda: nn.Linear(100_000, 100_000), ValueError,
     r"Linear: a parameter has shape \(100000, 100000\)"),
    (lambda: nn.Linear(2, 2, rng="seed"), TypeError, "Linear: rng must be a numpy Generator"),
    (lambda: nn.Linear(2, 2, dtype="abc"), TypeError, "Linear: dtype must be float32 or float64"),
    (lambda: nn.BatchNorm2d(0), ValueError, "BatchNorm2d: num_features must be >= 1"),
    (lambda: nn.BatchNorm1d(3, momentum=2), ValueError,
     r"BatchNorm1d: momentum must be in \[0, 1\], got 2"),
    (lambda: nn.BatchNorm2d(3, eps=-1), ValueError, r"BatchNorm2d: eps must be in \[0"),
    (lambda: nn.BatchNorm2d(3, affine=1), TypeError, "BatchNorm2d: affine must be True or False"),
    (lambda: nn.Upsample(scale_factor=0), ValueError,
     "Upsample: scale_factor must be positive and finite, got 0"),
    (lambda: nn.Upsample(scale_factor="2"), TypeError, "Upsample: scale_factor must be a number"),
    (lambda: nn.Upsample(), ValueError, "Upsample: give exactly one of scale_factor and size"),
    (lambda: nn.Upsample(0), ValueError, "Upsample: size must be >= 1, got 0"),
    (lambda: nn.Upsample(2, mode="nearest", align_corners=False), ValueError,
     "Upsample: align_corners can only be set with mode='bilinear'"),
    (lambda: nn.Upsample(2, mode="bilinear", align_corners=1), TypeError,
     "Upsample: align_corners must be True or False, got 1"),
    (lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError,
     r"Conv2d: out_channels \(6\) must be divisible by groups \(4\)"),
    (lambda: nn.Conv2d(4, 6, 3, groups=0), ValueError, "Conv2d: groups must be >= 1, got 0"),
    (lambda: nn.Conv1d(3, 6, 3, groups=2), ValueError,
     r"Conv1d: in_channels \(3\) must be divisible by groups \(2\)"),
    (lambda: nn.Conv1d(3, 6, (3, 3)), ValueError, r"Conv1d: kernel_size must be an int, got"),
    (lambda: nn.Conv1d(3, 6, 3, stride=2, padding="same"), ValueError,
     "Conv1d: padding='same' needs stride 1"),
    (lambda: nn.Conv1d(3, 6, 3, padding=(1, 2, 3)), ValueError,
     r"Conv1d: padding must be an int, a pair \(left, right\)"),
    (lambda: nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2), ValueError,
     r"ConvTranspose2d: output_padding \(2, 2\) must be smaller than stride \(2, 2\)"),
    (lambda: nn.ConvTranspose2d(2, 2, 3, padding="same"), ValueError,
     "ConvTranspose2d: padding='same' is not supported for a transposed convolution"),
    (lambda: nn.ConvTranspose2d(2, 2, 3, output_padding=-1), ValueError,
     "ConvTranspose2d: output_padding must be >= 0"),
    (lambda: nn.MaxPool2d(2, dilation=0), ValueError, "MaxPool2d: dilation must be >= 1"),
    (lambda: nn.MaxPool2d(2, ceil_mode=1), TypeError, "MaxPool2d: ceil_mode must be True or"),
    (lambda: nn.MaxPool2d(2, return_indices=True), ValueError,
     "MaxPool2d: return_indices=True is not supported"),
    (lambda: nn.AvgPool2d(2, divisor_override=0), ValueError,
     "AvgPool2d: divisor_override must be >= 1"),
    (lambda: nn.AvgPool2d(2, count_include_pad=None), TypeError,
     "AvgPool2d: count_include_pad must be True or False"),
    (lambda: nn.MaxPool1d((2, 2)), ValueError, r"MaxPool1d: kernel_size must be an int, got"),
    (lambda: nn.AvgPool1d(4, padding=3), ValueError, "AvgPool1d: padding .* at most half"),
    (lambda: nn.AdaptiveAvgPool2d((2, 2, 2)), ValueError,
     "AdaptiveAvgPool2d: output_size must be an int or a tuple of 2"),
    (lambda: nn.AdaptiveMaxPool1d(0), ValueError, "AdaptiveMaxPool1d: output_size must be >= 1"),
    (lambda: nn.AdaptiveMaxPool2d(None), TypeError,
     "AdaptiveMaxPool2d: output_size must be an int"),
    (lambda: nn.Softmax(1.0), TypeError, "Softmax: dim must be an int, got 1.0"),
    (lambda: nn.LogSoftmax(dim=True), TypeError, "LogSoftmax: dim must be an int, got True"),
    (lambda: nn.Flatten(start_dim="1"), TypeError, "Flatten: start_dim must be an int"),
    (lambda: nn.Unflatten(1, 4), TypeError, "Unflatten: unflattened_size must be a non-empty "
     "tuple"),
    (lambda: nn.Unflatten(1, (2, 0)), ValueError, "Unflatten: unflattened_size must hold "
     "positive sizes and at most one -1"),
    (lambda: nn.Unflatten(1, (-1, -1)), ValueError, "at most one -1"),
    (lambda: nn.Unflatten(1, (2, 1.5)), TypeError, "Unflatten: unflattened_size must be an int"),
    (lambda: nn.LeakyReLU("a"), TypeError, "LeakyReLU: negative_slope must be a number"),
    (lambda: nn.ELU(-1), ValueError, r"ELU: alpha must be in \[0"),
    (lambda: nn.Dropout(p=True), TypeError, "Dropout: p must be a number, got True"),
    (lambda: nn.Dropout(0.5, rng=-1), ValueError, "Dropout: rng must be >= 0, got -1"),
])
def test_constructors_check_every_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_backward_checks_dy_against_forwards_output(case):
    """A list, None, another rank or another shape for dy: an error naming the layer and
    both shapes, before any arithmetic (Flatten, Upsample, Maxout, Dropout, BatchNorm
    raised AttributeError, IndexError or unpacking errors)."""
    factory, shape, kind = LAYER_CASES[case]
    layer = factory()
    with pytest.raises(RuntimeError, match=r"backward\(\) needs a forward pass first"):
        layer.backward(np.zeros(shape))
    x = make_input(shape, kind, np.random.default_rng(0))
    y = forward(layer, x)
    name, want = re.escape(layer.name), re.escape(str(tuple(y.shape)))
    for dy, error, got in [
            (np.zeros(y.shape).tolist(), TypeError, "list"),
            (None, TypeError, "NoneType"),
            (np.zeros(y.shape + (1,)), ValueError, re.escape(str(y.shape + (1,)))),
            (np.zeros(y.size + 1), ValueError, re.escape(str((y.size + 1,))))]:
        with pytest.raises(error, match=f"^{name}: backward: dy must .*{want}, got {got}"):
            layer.backward(dy)


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_need_dx_false_returns_none_and_the_same_gradients(case):
    factory, shape, kind = LAYER_CASES[case]
    layer = factory()
    x = make_input(shape, kind, np.random.default_rng(1))
    r = np.random.default_rng(2).standard_normal(forward(layer, x).shape)
    assert layer.backward(r) is not None
    grads = {k: np.array(v) for k, v in layer.grads.items()}
    for v in layer.grads.values():
        v[...] = np.nan
    forward(layer, x)
    assert layer.backward(r, need_dx=False) is None
    for k, v in layer.grads.items():
        np.testing.assert_array_equal(v, grads[k])


@pytest.mark.parametrize("make, shape, want", [
    (lambda: nn.Conv2d(2, 3, 3, padding="same"), (2, 2, 5, 6), (2, 3, 5, 6)),
    (lambda: nn.Conv2d(2, 3, (3, 2), stride=2, padding="same_lower"), (2, 2, 5, 6), (2, 3, 3, 3)),
    (lambda: nn.Conv2d(2, 3, 3, padding=(0, 2, 1, 0)), (2, 2, 5, 6), (2, 3, 5, 5)),
    (lambda: nn.MaxPool2d(3, stride=1, padding="same"), (2, 2, 5, 6), (2, 2, 5, 6)),
    (lambda: nn.AvgPool2d(2, padding=(1, 0, 0, 1)), (2, 2, 5, 6), (2, 2, 3, 3)),
])
def test_layers_take_every_padding_functional_takes(make, shape, want):
    """A layer hands its padding to the op, which resolves it: no layer computes a shape."""
    layer = make()
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    for _ in range(2):    # the second time into the arrays of the first
        y = layer.forward(x)
        assert y.shape == want
        assert layer.backward(np.ones(want, np.float32)).shape == shape


def test_shared_code_is_no_inheritance():
    assert not isinstance(nn.AvgPool2d(2), nn.MaxPool2d)
    assert not isinstance(nn.MaxPool2d(2), nn.AvgPool2d)
    assert not isinstance(nn.BatchNorm1d(2), nn.BatchNorm2d)
    assert not isinstance(nn.BatchNorm2d(2), nn.BatchNorm1d)


def test_the_layers_name_is_added_once():
    model = Sequential(nn.ReLU(), nn.MaxPool2d(2))
    with pytest.raises(ValueError) as caught:
        model.forward(np.zeros((2, 3, 1, 1), np.float32))
    message = str(caught.value)
    assert message.startswith("layer 1 MaxPool2d(2): max_pool2d: the kernel") and \
        message.count("MaxPool2d") == 1
    with pytest.raises(TypeError, match=r"^Softmax\(\): softmax: x must be float32 or float64"):
        nn.Softmax().forward(np.zeros((2, 3), np.int32))     # outside a model: no index
    with pytest.raises(ValueError, match=r"^BatchNorm1d\(3\): expects input \(N, 3\) or "
                                         r"\(N, 3, L\), got shape \(2, 3, 4, 4\)"):
        nn.BatchNorm1d(3).forward(np.zeros((2, 3, 4, 4), np.float32))


def test_layers_leave_the_checks_to_functional():
    """What the op checks, the layer passes on as the op says it."""
    with pytest.raises(ValueError, match=r"^Upsample\(scale_factor=2\): upsample_nearest2d: x "
                                         r"must be 4-D"):
        nn.Upsample(scale_factor=2).forward(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"^BatchNorm2d\(4\): batch_norm: gamma must have "
                                         r"shape \(3,\)"):
        nn.BatchNorm2d(4).forward(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(TypeError, match=r"^ReLU\(\): relu: x must be float32 or float64, got "
                                        r"int64"):
        nn.ReLU().forward(np.zeros(3, np.int64))


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
@pytest.mark.parametrize("x", [None, [[1.0, 2.0]], 3.0], ids=["None", "list", "float"])
def test_forward_takes_arrays(case, x):
    """A layer hands on arrays (its dy must have the shape of what it returned): a list
    that an op would convert is refused too, by every layer alike."""
    layer = LAYER_CASES[case][0]()
    with pytest.raises(TypeError, match=f"^{re.escape(layer.name)}: forward: x must be an "
                                        f"array, got {type(x).__name__}"):
        layer.forward(x)


@pytest.mark.parametrize("make", [nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.Flatten])
def test_layers_without_arguments_take_none(make):
    with pytest.raises(TypeError, match="unexpected keyword argument 'config'"):
        make(config=1)


# ---------------------------------------------------------------- reused arrays


def test_reused_arrays_follow_the_shapes_functional_computes():
    """Inputs of another shape (a last, smaller batch; an image one pixel larger, whose
    pooled output has the same shape but whose dx does not) get results of their own
    shape, and the right values, however often they alternate."""
    rng = np.random.default_rng(3)
    layer = nn.MaxPool2d(2)
    for shape in [(4, 2, 8, 8), (4, 2, 9, 9), (3, 2, 8, 8), (4, 2, 8, 8), (4, 2, 9, 9)] * 2:
        x = rng.standard_normal(shape).astype(np.float32)
        dy = rng.standard_normal((shape[0], 2, 4, 4)).astype(np.float32)
        y = layer.forward(x)
        np.testing.assert_array_equal(y, x[:, :, :8, :8].reshape(shape[0], 2, 4, 2, 4, 2)
                                      .max(axis=(3, 5)))
        dx = layer.backward(dy)
        assert dx.shape == shape
        np.testing.assert_allclose(dx.sum(axis=(2, 3)), dy.sum(axis=(2, 3)), rtol=1e-5)


def test_a_callers_array_is_never_overwritten():
    """Outputs and dx a caller keeps (or a view of them) stay as they were; once dropped,
    the layer writes into the same arrays again."""
    rng = np.random.default_rng(4)
    layer = nn.Linear(3, 2, rng=0)
    x1, x2 = (rng.standard_normal((5, 3)).astype(np.float32) for _ in range(2))
    dy = np.ones((5, 2), np.float32)
    y1 = layer.forward(x1)
    dx1 = layer.backward(dy)
    y1_view, kept = y1[1:], (y1.copy(), dx1.copy())
    del y1
    y2 = layer.forward(x2)
    dx2 = layer.backward(2 * dy)
    np.testing.assert_array_equal(y1_view, kept[0][1:])
    np.testing.assert_array_equal(dx1, kept[1])
    assert not np.shares_memory(y2, y1_view) and not np.shares_memory(dx2, dx1)
    del y1_view, dx1, y2, dx2
    first = {k: id(v) for k, v in layer.reuse.arrays.items()}
    for _ in range(2):
        layer.forward(x1)
        layer.backward(dy)
    assert {k: id(v) for k, v in layer.reuse.arrays.items()} == first
