"""Graph models and containers: the merge ops, float64 finite-difference checks of whole
graphs (fan-out, fan-in, a tensor used several times, nesting), a graph equal to the
Sequential of its layers, summaries, files, the GPU (simulator), training on two MPI
ranks, and the errors of building and running a graph."""

import json
import re
from collections import OrderedDict

import numpy as np
import pytest

import fastcnn
from fastcnn import gradcheck, nn
from fastcnn.data import DataLoader
from fastcnn.model import (EarlyStopping, Graph, Input, LearningRateScheduler, Model,
                           ModelCheckpoint, ModelFileError, Sequential, load)
from fastcnn.optim import SGD, Adam
from helpers import call, check_gradient, cuda_usable, to_backend
from test_distributed import mpi, run_check  # noqa: F401  (the fixture, and running a check)

F64 = np.float64


@pytest.fixture
def one_thread():
    """Tiny float64 arrays, hundreds of forward passes: one thread each, which a busy
    machine's OpenMP barriers do not slow down."""
    threads = fastcnn.get_num_threads()
    fastcnn.set_num_threads(1)
    yield
    fastcnn.set_num_threads(threads)


# ---------------------------------------------------------------- the merge ops


def moved(backend, arrays):
    """A list of arrays where the backend computes (helpers.call moves only arrays)."""
    return [to_backend(backend, a)[0] for a in arrays]


def test_merge_ops_on_every_backend(any_backend):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    c = rng.standard_normal((2, 1, 4, 5))
    for dtype in (np.float32, np.float64):
        a_, b_, c_ = (v.astype(dtype) for v in (a, b, c))
        np.testing.assert_array_equal(call(any_backend, "add", a_, b_), a_ + b_)
        np.testing.assert_array_equal(call(any_backend, "multiply", a_, b_), a_ * b_)
        joined = call(any_backend, "concat", moved(any_backend, [a_, c_, b_]))
        np.testing.assert_array_equal(joined, np.concatenate([a_, c_, b_], axis=1))
        pieces = call(any_backend, "concat_backward", joined, [3, 1, 3])
        for piece, want in zip(pieces, (a_, c_, b_)):
            np.testing.assert_array_equal(piece, want)
    flat = [rng.standard_normal((3, 2)), rng.standard_normal((3, 4))]     # 2-D: features
    np.testing.assert_array_equal(call(any_backend, "concat", moved(any_backend, flat)),
                                  np.hstack(flat))


def test_merge_op_errors():
    F = fastcnn.functional
    x, y = np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"add: a and b must have the same shape.*\(2, 3, 4, 5\)"):
        F.add(x, y)
    with pytest.raises(ValueError, match=r"xs\[1\].shape=\(2, 3, 4, 5\) does not match"):
        F.concat([x, y])
    with pytest.raises(TypeError, match="non-empty list"):
        F.concat(x)
    with pytest.raises(ValueError, match=r"dy must be \(N, 5, ...\) for channels"):
        F.concat_backward(x, [1, 3, 1])


def test_need_dweight_gives_dx_alone(any_backend):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    for geo in (dict(padding=1), dict(stride=2), dict(padding=0)):        # winograd and not
        dy = rng.standard_normal(call(any_backend, "conv2d", x, w, **geo).shape)
        full = call(any_backend, "conv2d_backward", dy, x, w, **geo)
        alone = call(any_backend, "conv2d_backward", dy, x, w, need_dweight=False, **geo)
        assert alone[1] is None and alone[2] is None
        np.testing.assert_allclose(alone[0], full[0], rtol=1e-12)
    x, w, dy = rng.standard_normal((5, 4)), rng.standard_normal((3, 4)), rng.standard_normal((5, 3))
    full = call(any_backend, "linear_backward", dy, x, w)
    alone = call(any_backend, "linear_backward", dy, x, w, need_dweight=False)
    assert alone[1:] == (None, None)
    np.testing.assert_allclose(alone[0], full[0], rtol=1e-12)


# ---------------------------------------------------------------- gradients of whole graphs


def branchy(dtype=F64, seed=0, size=6):
    """h is used four times (a conv, a gate, a sum, a join): fan-out and fan-in of every
    kind, a BatchNorm after the join."""
    rng = np.random.default_rng(seed)
    x = Input((2, size, size), name="x")
    h = nn.Tanh()(nn.Conv2d(2, 3, 3, padding=1, dtype=dtype, rng=rng)(x), name="h")
    a = nn.Conv2d(3, 3, 3, padding=1, dtype=dtype, rng=rng)(h)
    gate = nn.Sigmoid()(nn.Conv2d(3, 3, 1, dtype=dtype, rng=rng)(h))
    b = nn.Multiply()([h, gate])
    c = nn.Add()([a, b, h])
    e = nn.BatchNorm2d(6, dtype=dtype)(nn.Concat()([c, h]))
    return Model(x, nn.Linear(6 * size * size, 4, dtype=dtype, rng=rng)(nn.Flatten()(e)))


def test_a_graph_with_fan_out_and_fan_in_has_the_gradients_of_finite_differences(one_thread):
    model = branchy()
    assert isinstance(model, Graph) and isinstance(model, Model)
    x = np.random.default_rng(1).standard_normal((3, 2, 6, 6))
    assert gradcheck(model, x)


def test_a_tensor_used_twice_gets_the_sum_of_its_gradients():
    """y = x * x through Multiply: dy/dx = 2x, the two uses' gradients added."""
    x = Input((3,))
    model = Model(x, nn.Multiply()([x, x]))
    v = np.array([[1.0, -2.0, 3.0]])
    np.testing.assert_array_equal(model.forward(v), v * v)
    np.testing.assert_array_equal(model.backward(np.ones_like(v)), 2 * v)
    y = Input((3,))
    twice = Model(y, nn.Add()([nn.Tanh()(y), y, y]))
    z = np.random.default_rng(0).standard_normal((2, 3))
    twice.forward(z)
    np.testing.assert_allclose(twice.backward(np.ones_like(z)), 1 - np.tanh(z) ** 2 + 2)


def test_containers_and_nested_models_have_the_gradients_of_finite_differences(one_thread):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 6, 6))

    def conv(i, o, k=3, **kw):
        return nn.Conv2d(i, o, k, padding=k // 2, dtype=F64, rng=rng, **kw)

    identity = nn.Residual(nn.Sequential(conv(2, 2), nn.Tanh(), conv(2, 2)))
    projection = nn.Residual(nn.Sequential(conv(2, 4, stride=2), nn.Tanh(), conv(4, 4)),
                             shortcut=nn.Conv2d(2, 4, 1, stride=2, dtype=F64, rng=rng))
    inception = nn.Concat(conv(2, 1, 1), nn.Sequential(conv(2, 2), nn.Tanh()),
                          nn.Sequential(nn.MaxPool2d(3, 1, 1), conv(2, 1, 1)))
    for block in (identity, projection, inception):
        assert gradcheck(block, x), block
    inner = Input((2, 6, 6))
    sub = Model(inner, nn.Tanh()(conv(2, 2)(inner)))              # a model as a layer
    outer_in = Input((2, 6, 6))
    h = sub(outer_in)
    y = nn.Add()([identity(h), Sequential(conv(2, 2), nn.Tanh())(outer_in)])
    assert gradcheck(Model(outer_in, inception(y)), x)


def test_several_inputs_and_outputs(one_thread):
    rng = np.random.default_rng(3)
    a, b = Input((4,), name="a"), Input((3,), name="b")
    h = nn.Tanh()(nn.Linear(4, 3, dtype=F64, rng=rng)(a))
    s = nn.Add()([h, b])
    model = Model([a, b], [nn.Linear(3, 2, dtype=F64, rng=rng)(s), h])
    xa, xb = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    y0, y1 = model.forward(xa, xb)
    assert y0.shape == (5, 2) and y1.shape == (5, 3)
    u0, u1 = rng.standard_normal((5, 2)), rng.standard_normal((5, 3))
    dxa, dxb = model.backward((u0, u1))

    def loss(ta, tb):
        z0, z1 = model.forward(ta, tb)
        return float(np.vdot(z0, u0) + np.vdot(z1, u1))

    check_gradient(lambda t: loss(t, xb), dxa, xa, rng)
    check_gradient(lambda t: loss(xa, t), dxb, xb, rng)
    assert model.forward([xa, xb])[0].shape == (5, 2)      # the inputs as one list too


def test_a_graph_of_a_sequentials_layers_computes_what_the_sequential_does():
    layers = [nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.BatchNorm2d(4), nn.ReLU(),
              nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3, rng=1)]
    chain = Sequential(*layers)
    x = Input((1, 8, 8))
    h = x
    for layer in layers:
        h = layer(h)
    graph = Model(x, h)
    data = np.random.default_rng(4).standard_normal((5, 1, 8, 8)).astype(np.float32)
    dy = np.random.default_rng(5).standard_normal((5, 3)).astype(np.float32)
    results = []
    for model in (chain, graph):
        y = model.forward(data).copy()
        dx = model.backward(dy).copy()
        results.append((y, dx, [g.copy() for layer in layers for g in layer.grads.values()]))
    (y0, dx0, g0), (y1, dx1, g1) = results
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_array_equal(dx0, dx1)
    for a, b in zip(g0, g1):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- the structure


def test_the_graph_is_a_plain_structure_and_its_summary_shows_it():
    model = branchy(np.float32)
    assert [n.name for n in model.inputs] == ["x"]
    names = [n.name for n in model.nodes]
    assert names[:2] == ["conv2d", "h"] and "add" in names and names[-1] == "linear"
    add = model.nodes[names.index("add")]
    assert isinstance(add.layer, nn.Add) and [i.name for i in add.inputs][2] == "h"
    assert add.shape == (3, 6, 6) and model.outputs[0].shape == (4,)
    assert model["h"] is model.nodes[1].layer and model.h is model["h"]
    assert model.layers == [n.layer for n in model.nodes]
    text = model.summary()
    assert "inputs" in text and "conv2d_1, multiply, h" in text and "(N, 6, 6, 6)" in text
    assert f"total parameters: {model.num_params():,}" in text
    assert "h = Tanh()(conv2d)" in repr(model)


def test_sequential_names_nests_and_slices():
    model = Sequential(OrderedDict(
        features=Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()),
        classifier=Sequential(nn.Flatten(), nn.Linear(2 * 36, 3))))
    assert len(model) == 2 and model["features"] is model.features is model[0]
    assert [name for name, _ in model.named_layers()] == [
        "features.0", "features.1", "classifier.0", "classifier.1"]
    assert model.layers[3].name.startswith("layer classifier.1 Linear")
    part = model[1:]
    assert list(part.children) == ["classifier"] and part[0] is model.classifier
    assert model.layers[3].index == "classifier.1"      # a slice leaves the names alone
    assert model.forward(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 3)
    assert re.search(r"features +Sequential: 2 layers +\(N, 2, 6, 6\) +20\n",
                     model.summary((1, 8, 8)))


def test_graph_model_trains_saves_loads_and_moves(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((48, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].mean(axis=(1, 2)) > x[:, 0, 4:].mean(axis=(1, 2))).astype(np.int64)
    inp = Input((1, 8, 8), name="image")
    h = nn.ReLU()(nn.BatchNorm2d(4)(nn.Conv2d(1, 4, 3, padding=1, rng=1)(inp, name="conv1")))
    h = nn.Residual(Sequential(nn.Conv2d(4, 4, 3, padding=1, rng=2), nn.BatchNorm2d(4)))(h)
    pooled = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(4, 2, 1, rng=4))
    h = nn.Concat(nn.Conv2d(4, 2, 1, rng=3), pooled)(h)
    out = Sequential(OrderedDict(flat=nn.Flatten(), fc=nn.Linear(4 * 64, 2, rng=5)))(h)
    model = Model(inp, out)
    model.compile(Adam(model.parameters(), lr=0.01), nn.SoftmaxCrossEntropy())
    history = model.fit(DataLoader((x, y), batch_size=16, shuffle=True, seed=0), epochs=4,
                        verbose=0)
    assert history["loss"][-1] < history["loss"][0]
    model.save(tmp_path / "g.npz")
    again = load(tmp_path / "g.npz")
    assert type(again) is Graph and [n.name for n in again.nodes] == \
        [n.name for n in model.nodes]
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    assert again.summary() == model.summary()
    fresh = Model.load(tmp_path / "g.npz")
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
    with pytest.raises(ModelFileError, match="holds a Graph, not a Sequential"):
        Sequential.load(tmp_path / "g.npz")
    for block in (model.nodes[3].layer, model.nodes[4].layer):   # a container on its own
        block.save(tmp_path / "b.npz")
        alone = load(tmp_path / "b.npz")
        assert type(alone) is type(block)
        h4 = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
        np.testing.assert_array_equal(alone.eval().forward(h4), block.eval().forward(h4))


def test_callbacks_work_for_a_graph_model(tmp_path):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((40, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 4, 40)
    model = branchy(np.float32, seed=9)
    model.compile(Adam(model.parameters(), lr=0.01), nn.SoftmaxCrossEntropy())
    rates = []
    callbacks = [ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss",
                                 save_best_only=True),
                 EarlyStopping(monitor="loss", patience=0, min_delta=10.0),  # stops at once
                 LearningRateScheduler(lambda epoch, lr: rates.append(epoch) or lr / 2)]
    history = model.fit((x, y), epochs=5, val=(x, y), callbacks=callbacks, verbose=0)
    assert len(history["loss"]) == 2 and rates == [1, 2]
    assert model.optimizer.lr == pytest.approx(0.0025)
    best = load(tmp_path / "best.npz")
    assert type(best) is Graph and best.summary((2, 6, 6)) == model.summary((2, 6, 6))


@pytest.mark.skipif(not cuda_usable(), reason="numba-cuda is not installed")
def test_a_graph_model_on_the_gpu():
    model = branchy(np.float32, seed=7, size=3)
    model.compile(SGD(model.parameters(), lr=0.1), nn.SoftmaxCrossEntropy())
    x = np.random.default_rng(8).standard_normal((2, 2, 3, 3)).astype(np.float32)
    y = np.array([0, 3])
    want = model.predict(x)
    model.to("cuda")
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-4, atol=1e-5)
    host = branchy(np.float32, seed=7, size=3)
    host.compile(SGD(host.parameters(), lr=0.1), nn.SoftmaxCrossEntropy())
    for m in (model, host):
        m.train_step(x, y)
    for a, b in zip(model.layers, host.layers):
        for k in a.params:
            np.testing.assert_allclose(fastcnn.to_host(a.params[k]), b.params[k], rtol=1e-3,
                                       atol=1e-5)


# ---------------------------------------------------------------- errors


def test_building_errors_name_the_nodes_and_shapes():
    x = Input((4, 8, 8), name="x")
    a = nn.Conv2d(4, 4, 3, padding=1)(x, name="same")
    b = nn.Conv2d(4, 4, 3)(x, name="smaller")
    with pytest.raises(ValueError, match=r"Add\(\) called on 'same' of shape \(4, 8, 8\), "
                                         r"'smaller' of shape \(4, 6, 6\).*input 1"):
        nn.Add()([a, b])
    with pytest.raises(ValueError, match=r"Concat\(\) called on 'same'.*'smaller'.*every axis"):
        nn.Concat()([a, b])
    with pytest.raises(ValueError, match=r"Linear\(3, 2\) called on 'x' of shape \(4, 8, 8\)"):
        nn.Linear(3, 2)(x)
    with pytest.raises(TypeError, match="takes one input, not a list"):
        nn.ReLU()([a, a])
    with pytest.raises(TypeError, match="mixed with arrays"):
        nn.Add()([a, np.zeros((1, 4, 8, 8))])
    with pytest.raises(ValueError, match="without dots"):
        nn.ReLU()(a, name="a.b")
    other = Input((4, 8, 8), name="other")
    y = nn.Add()([a, nn.ReLU()(other)])
    with pytest.raises(ValueError, match="Input 'other'.*not among the model's inputs"):
        Model(x, y)
    with pytest.raises(ValueError, match="input 'other' is not used by any output"):
        Model([x, other], a)
    with pytest.raises(TypeError, match="must be Input"):
        Model(a, y)
    with pytest.raises(ValueError, match="two nodes are named 'same'"):
        Model(x, nn.Add()([a, nn.ReLU()(x, name="same")]))
    conv = nn.Conv2d(4, 4, 3, padding=1)
    with pytest.raises(ValueError, match=r"same layer object Conv2d\(4, 4, 3, padding=1\) is "
                                         r"used twice, as 'conv2d' and 'conv2d_1'"):
        Model(x, conv(conv(x)))
    relu = nn.ReLU()
    with pytest.raises(ValueError, match="used twice, as '1' and '3'"):
        Sequential(nn.Linear(2, 2), relu, nn.Linear(2, 2), relu)


def test_a_cycle_is_refused():
    x = Input((3,), name="x")
    a = nn.ReLU()(x, name="a")
    b = nn.Tanh()(a, name="b")
    a.inputs = (b,)                   # only by editing the nodes: calls cannot make one
    with pytest.raises(ValueError, match="cycle: 'a' -> 'b' -> 'a'|cycle: 'b' -> 'a' -> 'b'"):
        Model(x, b)


def test_running_errors():
    x = Input(None, name="x")                    # no shape: nothing checked while building
    y = Input(None, name="y")
    model = Model([x, y], nn.Add()([nn.ReLU()(x), y]))
    with pytest.raises(TypeError, match=r"takes 2 input\(s\) \(x, y\), got 1"):
        model.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"input 0 has shape \(2, 3\) and input 1 has shape "
                                         r"\(2, 4\).*inputs: 'relu' \(2, 3\), 'y' \(2, 4\)"):
        model.forward(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(TypeError, match="list of arrays"):
        nn.Add().forward(np.zeros(3))
    block = nn.Residual(nn.Conv2d(2, 3, 1))
    with pytest.raises(ValueError, match="shortcut's has"):
        block.forward(np.zeros((1, 2, 4, 4), np.float32))


@pytest.mark.parametrize("edit, words", [
    (lambda a: a["nodes"][1].update(inputs=["nowhere"]), "not nodes defined before it"),
    (lambda a: a["nodes"][0].update(block={"layer": 7}), "names layer 7; the file has 2"),
    (lambda a: a["nodes"][0].update(block={"format": "fastcnn.Quux"}), "unknown format"),
    (lambda a: a.update(outputs=["x", "nothing"]), "are not nodes of the graph"),
    (lambda a: (a["nodes"][0].update(block={"layer": 1}),
                a["nodes"][1].update(block={"layer": 0})), "each of the file's layers once"),
])
def test_bad_graph_files(tmp_path, edit, words):
    x = Input((3,), name="x")
    model = Model(x, nn.Linear(3, 2)(nn.ReLU()(x)))
    model.save(tmp_path / "g.npz")
    arrays = dict(np.load(tmp_path / "g.npz"))
    arch = model.architecture()
    edit(arch)
    arrays["architecture"] = np.array(json.dumps(arch))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelFileError, match=words):
        load(tmp_path / "bad.npz")


# ---------------------------------------------------------------- two MPI ranks


def test_two_ranks_train_a_graph_model_as_one(mpi, tmp_path):  # noqa: F811
    """tests/mpi/checks.py graph: a step of a residual graph with a frozen layer, its
    batch split over two ranks, equals the one-process step on the whole batch; a
    distributed fit leaves the ranks' models identical."""
    status, out, reports = run_check(tmp_path, "graph")
    assert status == 0 and reports == ["graph ok\n"] * 2, out
