"""ONNX files are untrusted input: truncated, corrupted, cyclic, lying about their sizes,
reaching out of their folder or simply not ONNX, each gets an OnnxImportError (a
ValueError) that says what is wrong, never a crash, another exception or a huge
allocation."""

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import fastcnn  # noqa: E402
from fastcnn.onnx import OnnxImportError  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402
from onnx_graphs import graph, node, w  # noqa: E402


def small_model():
    nodes = [node("Conv", ["x", "W", "B"], ["h"], pads=[1, 1, 1, 1]),
             node("Relu", ["h"], ["r"], name="relu"), node("Flatten", ["r"], ["f"]),
             node("Gemm", ["f", "G"], transB=1)]
    return graph(nodes, (1, 4, 4), {"W": w(2, 1, 3, 3), "B": w(2), "G": w(3, 32)})


def load(proto_or_bytes, **kwargs):
    data = proto_or_bytes if isinstance(proto_or_bytes, bytes) else \
        proto_or_bytes.SerializeToString()
    return fastcnn.onnx.load(data, **kwargs)


def test_every_truncation_is_an_onnx_import_error():
    data = small_model().SerializeToString()
    assert isinstance(OnnxImportError("x"), ValueError)
    for cut in list(range(0, 64)) + list(range(64, len(data), 13)):
        with pytest.raises(OnnxImportError, match="not an ONNX model|truncated|opset|"
                                                  "no ONNX graph|tensor holds|dims"):
            load(data[:cut])


def test_corrupted_bytes_are_refused_or_loaded_never_a_crash():
    data = small_model().SerializeToString()
    rng = np.random.default_rng(0)
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(300):
        bad = bytearray(data)
        for i in rng.integers(0, len(bad), rng.integers(1, 4)):
            bad[i] = rng.integers(0, 256)
        try:
            load(bytes(bad))
            outcomes["loaded"] += 1
        except OnnxImportError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0


@pytest.mark.parametrize("data", [b"", b"not an onnx file at all\n", bytes(range(256)) * 4,
                                  b"PK\x03\x04" + bytes(100)])
def test_what_is_not_onnx(data):
    with pytest.raises(OnnxImportError):
        load(data)


def test_a_cycle_is_named():
    nodes = [node("Relu", ["x"], ["a"], "first"), node("Add", ["a", "c"], ["b"], "add"),
             node("Relu", ["b"], ["c"], "loop"), node("Relu", ["b"], name="out")]
    proto = helper.make_model(helper.make_graph(
        nodes, "cyclic", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])]),
        opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(OnnxImportError, match=r"the graph has a cycle: .*'add' \(Add\)"):
        load(proto)


def test_dangling_and_doubled_values():
    proto = graph([node("Add", ["x", "ghost"])], (3,))
    with pytest.raises(OnnxImportError, match=r"reads the value 'ghost', which no node"):
        load(proto)
    proto = graph([node("Relu", ["x"], name="a"), node("Tanh", ["x"], name="b")], (3,))
    with pytest.raises(OnnxImportError, match=r"node 'b' \(Tanh\) makes the value 'y', which "
                                              r"another node already gives"):
        load(proto)


def raw_tensor(name, dims, raw):
    """A float TensorProto of dims holding the bytes raw, whatever they amount to."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    tensor.raw_data = raw
    return tensor


def _with_initializer(tensor):
    proto = graph([node("MatMul", ["x", "B"])], (3,))
    proto.graph.initializer.append(tensor)
    return proto


def test_absurd_dims_cost_nothing():
    huge = raw_tensor("B", [2 ** 31, 2 ** 31], b"\0" * 16)
    with pytest.raises(OnnxImportError, match=r"initializer 'B': dims \[2147483648, 2147483648\] "
                                              r"make 4611686018427387904 values"):
        load(_with_initializer(huge))
    typed = TensorProto(name="B", data_type=TensorProto.FLOAT, dims=[10 ** 9, 10 ** 9],
                        float_data=[1.0, 2.0])
    with pytest.raises(OnnxImportError, match="make 1000000000000000000 values, but the tensor "
                                              "holds 2"):
        load(_with_initializer(typed))
    negative = TensorProto(name="B", data_type=TensorProto.FLOAT, dims=[-1, 4],
                           float_data=[1.0] * 4)
    with pytest.raises(OnnxImportError, match=r"invalid dims \[-1, 4\]"):
        load(_with_initializer(negative))
    strings = helper.make_tensor("B", TensorProto.STRING, [1], [b"a"])
    with pytest.raises(OnnxImportError, match="tensors of type STRING are not supported"):
        load(_with_initializer(strings))


def test_activations_are_bounded():
    proto = graph([node("Resize", ["x", "", "s"], mode="nearest",
                        coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
                  (2, 8, 8), {"s": np.array([1, 1, 4096, 4096], np.float32)})
    with pytest.raises(OnnxImportError, match="activations of one example would exceed"):
        load(proto)
    with pytest.raises(OnnxImportError, match="activations of one example would exceed"):
        load(graph([node("Relu", ["x"])], (4096, 4096, 16)))


def test_constants_never_grow():
    proto = graph([node("Gather", ["data", "idx"], ["g"]), node("Shape", ["g"], ["s"]),
                   node("Reshape", ["x", "s"])], (3,),
                  {"data": np.zeros((1, 1000), np.float32), "idx": np.zeros(1000, np.int64)})
    with pytest.raises(OnnxImportError, match="would be larger than its inputs"):
        load(proto)
    proto = graph([node("Add", ["a", "b"], ["c"]), node("Reshape", ["x", "c"])], (3,),
                  {"a": np.zeros((1000, 1), np.int64), "b": np.zeros((1, 1000), np.int64)})
    with pytest.raises(OnnxImportError, match="would be larger than its inputs"):
        load(proto)
    proto = graph([node("ConstantOfShape", ["s"], ["z"]), node("Reshape", ["x", "z"])], (3,),
                  {"s": np.array([2**20, 2**20], np.int64)})
    with pytest.raises(OnnxImportError, match="would be larger than the 1024 elements"):
        load(proto)


def _external(tmp_path, location, offset=0, length=None, data=None):
    """A model whose weight B lives in the external file location (written with data)."""
    b = w(3, 4)
    if data is not None:
        (tmp_path / "weights.bin").write_bytes(data)
    tensor = TensorProto(name="B", data_type=TensorProto.FLOAT, dims=b.shape)
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in [("location", location), ("offset", str(offset))] + (
            [("length", str(length))] if length is not None else []):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    proto = graph([node("MatMul", ["x", "B"])], (3,))
    proto.graph.initializer.append(tensor)
    path = tmp_path / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    return path, b


def test_external_data_beside_the_model_loads(tmp_path):
    b = w(3, 4)
    path, _ = _external(tmp_path, "weights.bin", offset=8, data=bytes(8) + b.tobytes())
    model = fastcnn.onnx.load(path)
    np.testing.assert_array_equal(model.layers[0].params["weight"], b.T)
    with pytest.raises(OnnxImportError, match="load the model from its path, not from bytes"):
        fastcnn.onnx.load(path.read_bytes())
    b = w(3, 4)                 # as onnx.save writes external data
    onnx.save(graph([node("MatMul", ["x", "B"])], (3,), {"B": b}), str(tmp_path / "saved.onnx"),
              save_as_external_data=True, location="saved.data", size_threshold=0)
    assert (tmp_path / "saved.data").stat().st_size == b.nbytes
    np.testing.assert_array_equal(
        fastcnn.onnx.load(tmp_path / "saved.onnx").layers[0].params["weight"], b.T)


@pytest.mark.parametrize("location, match", [
    ("../weights.bin", "not a relative path inside the model's folder"),
    ("sub/../../weights.bin", "not a relative path inside the model's folder"),
    ("/etc/passwd", "not a relative path inside the model's folder"),
    ("", "not a relative path inside the model's folder"),
    ("missing.bin", "not found beside the model"),
])
def test_external_data_stays_in_the_folder(tmp_path, location, match):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "weights.bin").write_bytes(w(3, 4).tobytes())
    path, _ = _external(folder, location)
    with pytest.raises(OnnxImportError, match=match):
        fastcnn.onnx.load(path)


def test_external_data_through_a_link_or_past_the_end(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "outside.bin").write_bytes(w(3, 4).tobytes())
    os.symlink(tmp_path / "outside.bin", folder / "link.bin")
    path, _ = _external(folder, "link.bin")
    with pytest.raises(OnnxImportError, match="leads out of the model's folder"):
        fastcnn.onnx.load(path)
    path, _ = _external(tmp_path, "weights.bin", offset=40, data=bytes(48))
    with pytest.raises(OnnxImportError, match="needs 48 bytes at offset 40"):
        fastcnn.onnx.load(path)
    path, _ = _external(tmp_path, "weights.bin", length=12, data=bytes(48))
    with pytest.raises(OnnxImportError, match=r"\(length 12\)"):
        fastcnn.onnx.load(path)


def test_opsets_domains_and_inputs():
    proto = graph([node("Relu", ["x"])], (3,))
    proto.opset_import[0].version = 5
    with pytest.raises(OnnxImportError, match="opset 5 is not supported"):
        load(proto)
    proto.opset_import[0].version = 10 ** 6
    with pytest.raises(OnnxImportError, match="opset 1000000 is not supported"):
        load(proto)
    del proto.opset_import[:]
    with pytest.raises(OnnxImportError, match="imports no version of the default ONNX opset"):
        load(proto)
    proto = graph([node("Relu", ["x"])], (3,))
    proto.graph.node[0].domain = "com.microsoft"
    with pytest.raises(OnnxImportError, match="domain 'com.microsoft' are not supported"):
        load(proto)
    proto = graph([node("Relu", ["x"])], (3,))
    proto.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
    with pytest.raises(OnnxImportError, match="input 'x' is not a float or double tensor"):
        load(proto)
    proto = graph([node("Relu", ["x"])], (3,))
    del proto.graph.output[:]
    with pytest.raises(OnnxImportError, match="the graph has no outputs"):
        load(proto)


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastcnn.onnx.load(tmp_path / "nothing.onnx")
