"""fastcnn -> ONNX: every layer, container and example model, exported, passes the ONNX
checker's full check and gives in ONNX Runtime what fastcnn gives in eval mode; loaded
back into fastcnn, it gives the same again."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import fastcnn  # noqa: E402
from fastcnn import nn  # noqa: E402
from fastcnn.model import Graph, Input, Model, Sequential  # noqa: E402
from onnx_models import LAYER_CASES, MODEL_CASES, NOT_READ_BACK, build, ort_run  # noqa: E402,E501


def predicted(model, xs):
    """fastcnn's eval-mode outputs (a list), as host copies."""
    model.eval().forget()
    ys = model.forward(*xs)
    return [np.array(y) for y in (ys if isinstance(ys, tuple) else (ys,))]


def feeds(proto, xs):
    return {i.name: x for i, x in zip(proto.graph.input, xs)}


@pytest.mark.parametrize("case", list(LAYER_CASES) + list(MODEL_CASES))
def test_onnx_runtime_gives_fastcnns_outputs(case, tmp_path):
    model, xs = build(case)
    path = tmp_path / "model.onnx"
    proto = fastcnn.onnx.export(model, path, [x.shape[1:] for x in xs] if len(xs) > 1
                                else xs[0].shape[1:])
    checked = onnx.load(str(path))
    onnx.checker.check_model(checked, full_check=True)
    want = predicted(model, xs)
    got = ort_run(str(path), feeds(proto, xs))
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    if case in NOT_READ_BACK:
        return
    back = fastcnn.onnx.load(path)              # fastcnn -> ONNX -> fastcnn: the same model
    for g, w in zip(predicted(back, xs), want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_the_batch_dimension_is_dynamic_and_names_are_kept(tmp_path):
    a, b = Input((3,), name="left"), Input((3,), name="right")
    h = nn.Linear(3, 4)(nn.Add()([a, b]), name="fc")
    model = Model([a, b], [nn.Softmax()(h, name="probs"), nn.Tanh()(h, name="tanh")])
    proto = fastcnn.onnx.export(model, tmp_path / "m.onnx", opset=13)
    assert [i.name for i in proto.graph.input] == ["left", "right"]
    assert [o.name for o in proto.graph.output] == ["probs", "tanh"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert proto.opset_import[0].version == 13
    assert {t.name for t in proto.graph.initializer} == {"fc.weight", "fc.bias"}
    for n in (1, 7):
        xs = [np.random.default_rng(n).standard_normal((n, 3)).astype(np.float32)
              for _ in range(2)]
        for g, w in zip(ort_run(proto, feeds(proto, xs)), predicted(model, xs)):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
    renamed = fastcnn.onnx.export(model, tmp_path / "n.onnx", input_names=["x1", "x2"],
                                  output_names=["p", "t"])
    assert [o.name for o in renamed.graph.output] == ["p", "t"]
    onnx.checker.check_model(renamed, full_check=True)


def test_initializers_carry_the_state_dict_names(tmp_path):
    model, _ = build("tiny ResNet")
    proto = fastcnn.onnx.export(model, tmp_path / "r.onnx", (1, 8, 8))
    names = {t.name for t in proto.graph.initializer}
    assert set(model.state_dict()) <= names
    arrays = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(arrays[key], value)


@pytest.mark.parametrize("opset", [13, 17, 18, onnx.defs.onnx_opset_version()])
def test_every_opset_from_13(opset, tmp_path):
    model, xs = build("Maxout images")
    proto = fastcnn.onnx.export(model, tmp_path / "m.onnx", xs[0].shape[1:], opset)
    onnx.checker.check_model(proto, full_check=True)
    if opset <= 21:         # what this ONNX Runtime runs
        np.testing.assert_allclose(ort_run(proto, feeds(proto, xs))[0],
                                   predicted(model, xs)[0], rtol=1e-5)


def test_an_output_that_is_an_input_or_twice_an_output(tmp_path):
    x = Input((3,), name="x")
    y = nn.ReLU()(x, name="relu")
    model = Graph([x], [y, y])
    proto = fastcnn.onnx.export(model, tmp_path / "m.onnx", output_names=["a", "b"])
    onnx.checker.check_model(proto, full_check=True)
    xs = [np.array([[-1, 0, 2]], np.float32)]
    a, b = ort_run(proto, feeds(proto, xs))
    np.testing.assert_array_equal(a, [[0, 0, 2]])
    np.testing.assert_array_equal(b, a)


def test_a_float64_model_exports_doubles(tmp_path):
    model = Sequential(nn.Linear(3, 2, dtype=np.float64), nn.Tanh())
    proto = fastcnn.onnx.export(model, tmp_path / "m.onnx", (3,))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    x = np.random.default_rng(0).standard_normal((2, 3))
    np.testing.assert_allclose(ort_run(proto, {"input": x})[0], model.predict(x), rtol=1e-12)


def test_one_layer_exports_as_a_model(tmp_path):
    proto = fastcnn.onnx.export(nn.Conv2d(1, 2, 3), tmp_path / "c.onnx", (1, 5, 5))
    assert [n.op_type for n in proto.graph.node] == ["Conv"]


def test_bad_arguments_are_clear_errors(tmp_path):
    model = Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="opset must be an int from 13"):
        fastcnn.onnx.export(model, tmp_path / "m.onnx", (3,), opset=9)
    with pytest.raises(ValueError, match="input_shape must be one example's shape"):
        fastcnn.onnx.export(model, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="input_shape"):
        fastcnn.onnx.export(model, tmp_path / "m.onnx", (0, 3))
    with pytest.raises(ValueError, match="expects 3 channels or features"):
        fastcnn.onnx.export(model, tmp_path / "m.onnx", (4,))
    with pytest.raises(ValueError, match="names must all differ"):
        fastcnn.onnx.export(model, tmp_path / "m.onnx", (3,), input_names=["x"],
                            output_names=["x"])

    class Custom(nn.ReLU):
        pass
    with pytest.raises(TypeError, match="no ONNX form for the layer Custom"):
        fastcnn.onnx.export(Sequential(Custom()), tmp_path / "m.onnx", (3,))
    assert not (tmp_path / "m.onnx").exists()    # nothing half written
