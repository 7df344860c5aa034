"""ONNX -> fastcnn: every operator the importer converts, in graphs written with
onnx.helper, gives what ONNX Runtime gives; what it cannot convert is refused with an
error naming the node, the operator and the attribute; an imported model trains."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import fastcnn  # noqa: E402
from fastcnn.model import Graph, Sequential  # noqa: E402
from fastcnn.nn import MSE  # noqa: E402
from fastcnn.onnx import OnnxImportError  # noqa: E402
from fastcnn.optim import SGD  # noqa: E402
from onnx_graphs import CASES, graph, ints, node, w  # noqa: E402
from onnx_models import ort_run  # noqa: E402


def example(proto, n=3, seed=0):
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value for d in dims[1:]]
    return np.random.default_rng(seed).standard_normal([n] + shape).astype(np.float32)


@pytest.mark.parametrize("case", list(CASES))
def test_fastcnn_gives_onnx_runtimes_outputs(case):
    proto = CASES[case]()
    onnx.checker.check_model(proto, full_check=True)
    model = fastcnn.onnx.load(proto.SerializeToString())
    static = proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value
    x = example(proto, static or 3)
    want = ort_run(proto, {"x": x})[0]
    got = model.predict(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_chain_is_a_sequential_and_a_fork_a_graph():
    assert isinstance(fastcnn.onnx.load(CASES["view(x.size(0), -1)"]().SerializeToString()),
                      Sequential)
    model = fastcnn.onnx.load(CASES["Add"]().SerializeToString())
    assert isinstance(model, Graph)
    assert [n.name for n in model.nodes] == ["conv1", "conv2", "add_node"]
    assert list(model.state_dict()) == ["conv1.weight", "conv2.weight"]


def test_shape_arithmetic_leaves_no_layers():
    model = fastcnn.onnx.load(CASES["view(x.size(0), -1)"]().SerializeToString())
    assert [type(layer).__name__ for layer in model.layers] == ["Flatten", "Linear"]
    model = fastcnn.onnx.load(CASES["MatMul + Add"]().SerializeToString())
    assert [type(layer).__name__ for layer in model.layers] == ["Linear"]
    assert "bias" in model.layers[0].params
    model = fastcnn.onnx.load(CASES["Pad + Conv"]().SerializeToString())
    assert model.layers[0].config()["padding"] == (1, 2)


def _layers(case):
    model = fastcnn.onnx.load(CASES[case]().SerializeToString())
    return [(type(layer).__name__, layer.config()) for layer in model.layers]


def test_windows_read_as_the_layers_take_them():
    assert _layers("Conv asymmetric pads")[0][1]["padding"] == (1, 2, 0, 1)  # t, b, l, r
    assert _layers("MaxPool dilations, pads, ceil_mode") == [("MaxPool2d", dict(
        kernel_size=3, stride=2, padding=(1, 1, 1, 0), dilation=(2, 1), ceil_mode=True))]
    assert _layers("AveragePool count_include_pad=0") == [("AvgPool2d", dict(
        kernel_size=3, stride=2, padding=1, count_include_pad=False))]
    assert _layers("Pad + AveragePool with pads") == [("AvgPool2d", dict(
        kernel_size=3, stride=1, padding=(1, 0, 1, 1)))]   # the Pad's zeros count
    assert _layers("ConvTranspose")[0] == ("ConvTranspose2d", dict(
        in_channels=4, out_channels=3, kernel_size=3, stride=2, padding=1, output_padding=1))
    assert _layers("Resize nearest sizes 7, 5") == [("Upsample", dict(size=(7, 5)))]
    assert _layers("Resize linear align_corners scales") == [("Upsample", dict(
        scale_factor=(2, 1.5), mode="bilinear", align_corners=True))]


def test_reshapes_are_the_fewest_layers():
    assert _layers("Reshape merging axes") == [("Flatten", dict(end_dim=2))]
    assert _layers("Reshape splitting an axis") == [("Unflatten", dict(
        dim=1, unflattened_size=(2, 3)))]
    assert _layers("Reshape anyhow") == [("Flatten", {}), ("Unflatten", dict(
        dim=1, unflattened_size=(4, 6)))]
    assert [kind for kind, _ in _layers("Unsqueeze")] == ["Unflatten", "Conv2d"]
    assert _layers("Squeeze") == [("AvgPool2d", dict(kernel_size=(4, 5))), ("Flatten", {})]


def test_the_initializers_become_parameters_that_train(tmp_path):
    nodes = [node("Conv", ["x", "W", "B"], ["h"], pads=[1, 1, 1, 1]),
             node("BatchNormalization", ["h", "s", "b", "m", "v"], ["n"]),
             node("Relu", ["n"], ["r"]), node("Flatten", ["r"], ["f"]),
             node("Gemm", ["f", "G", "C"], transB=1)]
    inits = {"W": w(3, 1, 3, 3), "B": w(3), "s": w(3), "b": w(3), "m": w(3),
             "v": np.abs(w(3)) + 1, "G": w(2, 3 * 16), "C": w(2)}
    path = tmp_path / "m.onnx"
    onnx.save(graph(nodes, (1, 4, 4), inits), str(path))
    model = fastcnn.onnx.load(path)
    np.testing.assert_array_equal(model.layers[0].params["weight"], inits["W"])
    np.testing.assert_array_equal(model.layers[1].buffers["running_var"], inits["v"])
    x = example(onnx.load(str(path)), 8)
    y = np.random.default_rng(1).standard_normal((8, 2)).astype(np.float32)
    model.compile(SGD(model.parameters(), lr=0.05), MSE())
    before = model.evaluate((x, y))["loss"]
    for _ in range(5):
        model.train_step(x, y)
    assert model.evaluate((x, y))["loss"] < before
    assert not np.array_equal(model.layers[-1].params["weight"], inits["G"])


@pytest.mark.parametrize("proto, match", [
    (graph([node("Conv", ["x", "W"], group=3)], (3, 4, 4), {"W": w(2, 1, 3, 3)}),
     r"node 'conv_node' \(Conv\): attribute group=3 is not supported"),
    (graph([node("MaxPool", ["x"], kernel_shape=[3, 3], pads=[2, 0, 0, 0])], (2, 5, 5)),
     r"node 'maxpool_node' \(MaxPool\): attribute pads=\[2, 0, 0, 0\] is not supported "
     r"\(padding .* past half the kernel"),
    (graph([node("AveragePool", ["x"], kernel_shape=[3, 3], dilations=[2, 2])], (2, 7, 7),
           opset=19),
     r"\(AveragePool\): attribute dilations=\[2, 2\] is not supported"),
    (graph([node("Pad", ["x", "p"], ["q"]),
            node("AveragePool", ["q"], kernel_shape=[3, 3], pads=[0, 1, 0, 1])], (2, 5, 5),
           {"p": ints(0, 0, 1, 0, 0, 0, 0, 0)}),
     r"\(AveragePool\): attribute count_include_pad=0 is not supported \(the zeros of the Pad"),
    (graph([node("Pad", ["x", "p"], ["q"]),
            node("AveragePool", ["q"], kernel_shape=[2, 2], strides=[3, 3], ceil_mode=1)],
           (2, 6, 6), {"p": ints(0, 0, 0, 0, 0, 0, 1, 1)}),
     r"\(AveragePool\): attribute ceil_mode=1 is not supported \(a last window starts in "
     r"the zeros of the Pad"),
    (graph([node("ConvTranspose", ["x", "W"], strides=[2, 2], output_shape=[9, 6])],
           (2, 3, 3), {"W": w(2, 2, 3, 3)}),
     r"node 'convtranspose_node' \(ConvTranspose\): attribute output_shape=\[9, 6\] is not "
     r"supported \(axis 2 would need 2 more output rows"),
    (graph([node("ConvTranspose", ["x", "W"], strides=[2, 2], output_padding=[2, 0])],
           (2, 3, 3), {"W": w(2, 2, 3, 3)}),
     r"\(ConvTranspose\): attribute output_padding=\[2, 0\] is not supported"),
    (graph([node("ConvTranspose", ["x", "W"], group=2)], (3, 3, 3), {"W": w(3, 2, 3, 3)}),
     r"\(ConvTranspose\): attribute group=2 is not supported"),
    (graph([node("Resize", ["x", "", "s"], mode="cubic")], (2, 3, 3),
           {"s": np.array([1, 1, 2, 2], np.float32)}),
     r"\(Resize\): attribute mode='cubic' is not supported"),
    (graph([node("Resize", ["x", "", "s"], mode="nearest",
                 coordinate_transformation_mode="align_corners")], (2, 3, 3),
           {"s": np.array([1, 1, 3, 3], np.float32)}),
     r"attribute coordinate_transformation_mode='align_corners' is not supported"),
    (graph([node("Resize", ["x", "", "s"], mode="nearest", nearest_mode="floor")], (2, 3, 3),
           {"s": np.array([1, 1, 2, 2], np.float32)}),
     r"attribute nearest_mode='floor' is not supported \(with coordinate_transformation_mode="
     r"'half_pixel'"),
    (graph([node("Resize", ["x", "", "s"])], (2, 3, 3),
           {"s": np.array([1, 1, 1.7, 2], np.float32)}),
     r"attribute nearest_mode='round_prefer_floor' is not supported \(.* the pixels picked "
     r"along axis 2 \(from 3 to 5\)"),
    (graph([node("Resize", ["x", "", "s"], mode="nearest",
                 coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
           (2, 3, 3), {"s": np.array([1, 1, 1, 2.2], np.float32)}),
     r"nearest_mode='floor' is not supported \(.* along axis 3 \(from 3 to 6\)"),
    (graph([node("Resize", ["x", "", "s"], mode="linear")], (2, 3, 3),
           {"s": np.array([1, 1, 7 / 3, 1], np.float32)}),
     r"by scales \[1, 1, 2.33.*\] \(ONNX Runtime's output is 7x3 pixels, fastcnn's and "
     r"PyTorch's 6x3\)"),
    (graph([node("Resize", ["x", "", "s"], mode="linear",
                 coordinate_transformation_mode="asymmetric")], (2, 3, 3),
           {"s": np.array([1, 1, 2, 2], np.float32)}),
     r"attribute coordinate_transformation_mode='asymmetric' is not supported"),
    (graph([node("Resize", ["x", "", "", "s"], mode="linear",
                 coordinate_transformation_mode="pytorch_half_pixel")], (2, 3, 3),
           {"s": ints(3, 2, 1, 6)}, static_batch=3),
     r"attribute coordinate_transformation_mode='pytorch_half_pixel' is not supported"),
    (graph([node("Upsample", ["x", "s"], mode="linear")], (2, 3, 3),
           {"s": np.array([1, 1, 2, 2], np.float32)}, opset=9),
     r"\(Upsample\): attribute mode='linear' is not supported \(before opset 11"),
    (graph([node("Resize", ["x", "", "", "s"])], (2, 3, 3), {"s": ints(1, 2, 6, 6)}),
     r"by sizes \[1, 2, 6, 6\]; fastcnn's Upsample resizes the height and width"),
    (graph([node("Softmax", ["x"], axis=1)], (3, 4, 4)),
     r"\(Softmax\): attribute axis=1 is not supported"),
    (graph([node("Relu", ["x"], bogus=3)], (3,)),
     r"\(Relu\): attribute 'bogus' is not supported"),
    (graph([node("Einsum", ["x"], equation="ni->ni")], (3,)),
     r"node 'einsum_node' \(Einsum\): the operator Einsum is not supported \(fastcnn.onnx.load "
     r"converts .*Conv"),
    (graph([node("Pad", ["x", "p"], ["q"]), node("Relu", ["q"])], (2, 3, 3),
           {"p": ints(0, 0, 1, 1, 0, 0, 1, 1)}),
     r"\(Relu\): .*a Pad \(constant 0\) only in front of a Conv or AveragePool"),
    (graph([node("Pad", ["x", "p"], ["q"]), node("MaxPool", ["q"], kernel_shape=[2, 2])],
           (2, 3, 3), {"p": ints(0, 0, 1, 1, 0, 0, 1, 1)}),
     r"\(MaxPool\): .*a Pad \(constant 0\) only in front of a Conv or AveragePool"),
    (graph([node("Pad", ["x", "p", "v"], ["q"]), node("Conv", ["q", "W"])], (2, 3, 3),
           {"p": ints(0, 0, 1, 1, 0, 0, 1, 1), "v": np.array(1.0, np.float32),
            "W": w(2, 2, 3, 3)}),
     r"\(Pad\): pads .* fastcnn supports 2 pads per axis, with 0"),
    (graph([node("Reshape", ["x", "s"])], (2, 3, 4), {"s": ints(4, -1)}),
     r"\(Reshape\): reshapes to \[4, -1\], which does not keep the batch axis"),
    (graph([node("Reshape", ["x", "s"])], (2, 3, 4), {"s": ints(2, 0, 3, 4)}),
     r"\(Reshape\): reshapes \(N, 2, 3, 4\) to \[2, 2, 3, 4\], which does not keep"),
    (graph([node("Unsqueeze", ["x", "a"])], (3,), {"a": ints(0)}),
     r"\(Unsqueeze\): adds axes \[0\] .* keep the batch axis first"),
    (graph([node("Mul", ["x", "c"])], (3,), {"c": w(3)}),
     r"\(Mul\): multiplies a tensor by a constant"),
    (graph([node("Relu", ["x"], ["r"]), node("Add", ["r", "c"])], (3,), {"c": w(3)}),
     r"\(Add\): adds a constant of shape \(3,\) to a tensor"),
    (graph([node("Conv", ["x", "W"])], (2, 4, 4), {"W": w(2, 2, 3)}),
     r"only 2-D convolutions are supported"),
    (graph([node("Conv", ["x", "W"])], (3, 4, 4), {"W": w(2, 2, 3, 3)}),
     r"\(Conv\): .*expects 2 channels"),
    (graph([node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2]), node("Relu", ["i"], ["z"])],
           (2, 4, 4), outputs=("y", "z")),
     r"\(MaxPool\): its output 1 \('i'\) is used"),
    (graph([node("Shape", ["x"], ["s"]), node("Relu", ["x"], ["y"])], (2, 4, 4),
           outputs=("y", "s")),
     r"the graph's output 's' is a constant"),
])
def test_what_fastcnn_cannot_run_is_one_clear_error(proto, match):
    with pytest.raises(OnnxImportError, match=match):
        fastcnn.onnx.load(proto.SerializeToString())


def test_input_shape_for_a_file_that_leaves_it_open():
    proto = graph([node("Relu", ["x"])], (3,))
    proto.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "C"
    with pytest.raises(OnnxImportError, match=r"input 'x' has shape \['N', 'C'\].*input_shape"):
        fastcnn.onnx.load(proto.SerializeToString())
    model = fastcnn.onnx.load(proto.SerializeToString(), input_shape=(5,))
    np.testing.assert_array_equal(model.predict(np.array([[-1, 2, 0, 3, -4]], np.float32)),
                                  [[0, 2, 0, 3, 0]])


def test_supported_operators_are_listed():
    ops = fastcnn.onnx.supported_operators()
    for op in ["Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Gemm",
               "MatMul", "Add", "Concat", "Mul", "Relu", "LeakyRelu", "Elu", "Sigmoid", "Tanh",
               "Softmax", "BatchNormalization", "Dropout", "Flatten", "Reshape", "Squeeze",
               "Unsqueeze", "Resize", "Upsample", "Pad", "Identity"]:
        assert op in ops
