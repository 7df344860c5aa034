"""The figures issue 15 (ONNX in and out) asks for, measured on the MNIST digits of the
examples' fixed split (the first 8,000 train, the last 2,000 are held out). Not part of
the test suite: a few minutes on two cores; needs onnx, onnxruntime, torch (2.13, CPU)
and safetensors.

(a) the seed CNN and the ResNet example, trained in fastcnn and exported to ONNX:
    held-out accuracy in fastcnn and in ONNX Runtime, and the digits they disagree on;
(b) the seed CNN trained in PyTorch: its held-out accuracy, fastcnn's after
    torch.onnx.export -> fastcnn.onnx.load and after safetensors -> load_state_dict,
    and after one epoch of fine-tuning the imported model in fastcnn;
(c) the share of the issue's operator list that fastcnn.onnx.load reads, and what it
    still refuses (one probe graph each, with the error it gives).

    python tools/onnx_targets.py [--data DIR] [--epochs 2] [--threads 2]
"""

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

import fastcnn
from fastcnn import nn
from fastcnn.data import DataLoader
from fastcnn.model import Sequential
from fastcnn.onnx import OnnxImportError
from fastcnn.optim import Adam

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples"))
from mnist_common import default_data_dir, digits  # noqa: E402
from resnet import resnet  # noqa: E402

# The issue's operator list: an entry is read when every operator in it is.
ISSUE_OPERATORS = [
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool/GlobalMaxPool",
    "Gemm", "MatMul", "Add", "Concat", "Mul", "Relu", "LeakyRelu", "Elu", "Sigmoid", "Tanh",
    "Softmax", "LogSoftmax", "BatchNormalization", "Dropout", "Flatten",
    "Reshape/Squeeze/Unsqueeze", "Resize/Upsample", "Pad", "Identity"]


def seed_cnn():
    return Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(64 * 7 * 7, 10))


def classes(scores):
    return np.asarray(scores).argmax(1)


def accuracy(predicted, y):
    return 100 * float(np.mean(predicted == y))


def ort_classes(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([classes(session.run(None, {name: x[i:i + 500]})[0])
                           for i in range(0, len(x), 500)])


def fit(model, train, epochs, lr, seed=0):
    model.compile(Adam(model.parameters(), lr=lr), nn.SoftmaxCrossEntropy())
    start = time.perf_counter()
    model.fit(DataLoader(train, batch_size=100, shuffle=True, seed=seed), epochs=epochs,
              verbose=0)
    return time.perf_counter() - start


def part_a(train, held, epochs, folder):
    print("(a) trained in fastcnn, exported to ONNX: held-out accuracy")
    x, y = held
    for name, model, n in (("seed CNN", seed_cnn(), epochs),
                           ("ResNet example (width 16)", resnet(16), epochs)):
        seconds = fit(model, train, n, 1e-3)
        path = folder / f"{name.split()[0]}.onnx"
        fastcnn.onnx.export(model, path, (1, 28, 28))
        ours, theirs = classes(model.predict(x)), ort_classes(path, x)
        print(f"    {name}, {n} epoch(s) ({seconds:.0f} s): fastcnn {accuracy(ours, y):.2f} %, "
              f"ONNX Runtime {accuracy(theirs, y):.2f} %, "
              f"{int(np.sum(ours != theirs))} of {len(y)} digits classed differently")


def part_b(train, held, epochs, folder):
    import safetensors.torch
    import torch
    print(f"(b) the seed CNN trained in PyTorch {torch.__version__}, {epochs} epoch(s)")
    torch.manual_seed(0)
    tnn = torch.nn
    net = tnn.Sequential(tnn.Conv2d(1, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                         tnn.Conv2d(32, 64, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                         tnn.Flatten(), tnn.Linear(64 * 7 * 7, 10))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    xs, ys = torch.from_numpy(train[0]), torch.from_numpy(train[1].astype(np.int64))
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for batch in torch.randperm(len(xs), generator=generator).split(100):
            optimizer.zero_grad()
            tnn.functional.cross_entropy(net(xs[batch]), ys[batch]).backward()
            optimizer.step()
    net.eval()
    x, y = held
    with torch.no_grad():
        theirs = classes(net(torch.from_numpy(x)).numpy())
    print(f"    PyTorch: {accuracy(theirs, y):.2f} %")
    path = folder / "torch_cnn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.randn(2, 1, 28, 28),), str(path), dynamo=False,
                          input_names=["x"], output_names=["logits"], opset_version=17,
                          dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})
    imported = fastcnn.onnx.load(path)
    ours = classes(imported.predict(x))
    print(f"    fastcnn after torch.onnx.export -> fastcnn.onnx.load: {accuracy(ours, y):.2f} % "
          f"({int(np.sum(ours != theirs))} digits classed differently from PyTorch)")
    weights = folder / "torch_cnn.safetensors"
    safetensors.torch.save_file(net.state_dict(), str(weights))
    model = seed_cnn()
    model.load_state_dict(fastcnn.load_safetensors(weights))
    ours = classes(model.predict(x))
    print(f"    fastcnn after safetensors -> load_state_dict: {accuracy(ours, y):.2f} % "
          f"({int(np.sum(ours != theirs))} digits classed differently from PyTorch)")
    seconds = fit(imported, train, 1, 3e-4)
    print(f"    the imported model fine-tuned in fastcnn, 1 epoch, Adam 3e-4 ({seconds:.0f} s): "
          f"{accuracy(classes(imported.predict(x)), y):.2f} %")


def _probe(op, inputs, x_shape, inits=None, opset=19, **attrs):
    """A one-node graph of op on x (N, *x_shape) with initializers {name: array}."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N"] + list(x_shape))
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    tensors = [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()]
    graph = helper.make_graph([helper.make_node(op, inputs, ["y"], name="probe", **attrs)],
                              "probe", [x], [y], tensors)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _f(*values):
    return np.array(values, np.float32)


REFUSED = {   # what is still refused, one probe each
    "ConvTranspose to an output_shape larger than it makes": _probe(
        "ConvTranspose", ["x", "W"], (2, 3, 3), {"W": np.ones((2, 2, 3, 3), np.float32)},
        strides=[2, 2], output_shape=[9, 6]),
    "AveragePool with dilations": _probe("AveragePool", ["x"], (2, 7, 7), kernel_shape=[3, 3],
                                         dilations=[2, 2]),
    "MaxPool pads past half the kernel": _probe("MaxPool", ["x"], (2, 5, 5),
                                                kernel_shape=[3, 3], pads=[2, 0, 0, 0]),
    "Pad other than zeros": _probe("Pad", ["x", "p"], (2, 3, 3),
                                   {"p": np.array([0, 0, 1, 1, 0, 0, 1, 1])}, mode="reflect"),
    "Resize cubic": _probe("Resize", ["x", "", "s"], (2, 3, 3), {"s": _f(1, 1, 2, 2)},
                           mode="cubic"),
    "Resize linear asymmetric": _probe("Resize", ["x", "", "s"], (2, 3, 3),
                                       {"s": _f(1, 1, 2, 2)}, mode="linear",
                                       coordinate_transformation_mode="asymmetric"),
    "Resize nearest half_pixel, non-integer scale": _probe(
        "Resize", ["x", "", "s"], (2, 3, 3), {"s": _f(1, 1, 1.7, 1.7)}, mode="nearest"),
    "Softmax over channels of images": _probe("Softmax", ["x"], (3, 4, 4), axis=1),
    "Concat along an axis other than channels": _probe("Concat", ["x", "x"], (3, 4), axis=2),
    "Mul by a constant": _probe("Mul", ["x", "c"], (3,), {"c": _f(1, 2, 3)}),
    "Reshape that moves the batch axis": _probe("Reshape", ["x", "s"], (2, 3, 4),
                                                {"s": np.array([4, -1])}),
}


def part_c():
    supported = set(fastcnn.onnx.supported_operators())
    read = [entry for entry in ISSUE_OPERATORS if set(entry.split("/")) <= supported]
    print(f"(c) the issue's operator list: {len(read)} of {len(ISSUE_OPERATORS)} entries read "
          f"({100 * len(read) / len(ISSUE_OPERATORS):.0f} %)"
          + ("" if len(read) == len(ISSUE_OPERATORS) else
             f"; not read: {sorted(set(ISSUE_OPERATORS) - set(read))}"))
    print(f"    fastcnn.onnx.load converts {len(supported)} operators in all")
    print("    still refused (probe: the error):")
    for what, proto in REFUSED.items():
        try:
            fastcnn.onnx.load(proto.SerializeToString())
            print(f"    - {what}: READ (no longer refused)")
        except OnnxImportError as e:
            print(f"    - {what}: {str(e)[:160]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--epochs", type=int, default=2, help="of each training (default 2)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        fastcnn.set_num_threads(args.threads)
        import torch
        torch.set_num_threads(args.threads)
    fastcnn.init.seed(0)
    train, held = digits(argparse.Namespace(data=args.data, kind="t10k", train=8000,
                                            held_out=None))
    print(f"{len(train[0]):,} training digits, {len(held[0]):,} held out, from {args.data}")
    with tempfile.TemporaryDirectory() as folder:
        part_a(train, held, args.epochs, Path(folder))
        part_b(train, held, args.epochs, Path(folder))
    part_c()


if __name__ == "__main__":
    main()
