"""ONNX Runtime as an implementation of the forward cases (extra ``bench``).

What a user picks for fast CPU inference: each step is a one-node (or, for the seed
CNN, one-model) ONNX graph whose weights are initializers, run by an InferenceSession
with every graph optimisation on and fastcnn's thread count. The graphs are built
with onnx.helper on first use and kept, so building a session is never timed.
"""

import numpy as np

from . import training
from .impls import Implementation

OPSET = 17


class OnnxRuntime(Implementation):
    name = "onnxruntime"
    label = "ONNX Runtime (CPU execution provider, all graph optimisations)"

    def __init__(self):
        self._sessions = {}

    def unavailable(self):
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnx or onnxruntime is not installed (pip install 'fastcnn[bench]')"
        return None

    def _session(self, key, build):
        """The session for key, built by build() -> (nodes, initializers, x shape, y shape)
        the first time."""
        if key not in self._sessions:
            import onnxruntime as ort
            from onnx import TensorProto, helper, numpy_helper

            import fastcnn
            nodes, inits, x_shape, dtype = build()
            elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
            graph = helper.make_graph(
                nodes, "case", [helper.make_tensor_value_info("x", elem, list(x_shape))],
                [helper.make_tensor_value_info("y", elem, None)],
                [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in inits.items()])
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = fastcnn.get_num_threads()
            options.inter_op_num_threads = 1
            self._sessions[key] = ort.InferenceSession(model.SerializeToString(), options,
                                                       providers=["CPUExecutionProvider"])
        return self._sessions[key]

    def _run(self, session, x):
        return session.run(["y"], {"x": x})[0]

    def conv2d(self, x, weight, bias, stride, padding):
        return self._conv("Conv", x, weight, bias, stride, padding, 1)

    def grouped_conv2d(self, x, weight, bias, stride, padding, groups):
        return self._conv("Conv", x, weight, bias, stride, padding, groups)

    def conv_transpose2d(self, x, weight, bias, stride, padding):
        return self._conv("ConvTranspose", x, weight, bias, stride, padding, 1)

    def _conv(self, op, x, weight, bias, stride, padding, groups):
        """One Conv or ConvTranspose node (the same attributes, PyTorch's weight layouts)."""
        from onnx import helper

        def build():
            pads = [padding[0], padding[1], padding[0], padding[1]]
            node = helper.make_node(op, ["x", "w", "b"], ["y"], strides=list(stride),
                                    pads=pads, kernel_shape=list(weight.shape[2:]),
                                    group=groups)
            return [node], {"w": weight, "b": bias}, x.shape, x.dtype
        key = (op, x.shape, x.dtype, id(weight), stride, padding, groups)
        return self._run(self._session(key, build), x)

    def max_pool2d_infer(self, x, kernel_size):
        from onnx import helper

        def build():
            node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=list(kernel_size),
                                    strides=list(kernel_size))
            return [node], {}, x.shape, x.dtype
        return self._run(self._session(("max_pool2d", x.shape, x.dtype, kernel_size), build), x)

    def predict(self, x, y, **weights):
        from onnx import helper
        w1 = weights["conv1_weight"]
        pads = [w1.shape[-1] // 2] * 4

        def build():
            conv = dict(kernel_shape=list(w1.shape[2:]), pads=pads)
            pool = dict(kernel_shape=[2, 2], strides=[2, 2])
            nodes = [
                helper.make_node("Conv", ["x", "conv1_weight", "conv1_bias"], ["c1"], **conv),
                helper.make_node("Relu", ["c1"], ["r1"]),
                helper.make_node("MaxPool", ["r1"], ["p1"], **pool),
                helper.make_node("Conv", ["p1", "conv2_weight", "conv2_bias"], ["c2"], **conv),
                helper.make_node("Relu", ["c2"], ["r2"]),
                helper.make_node("MaxPool", ["r2"], ["p2"], **pool),
                helper.make_node("Flatten", ["p2"], ["f"]),
                helper.make_node("Gemm", ["f", "linear_weight", "linear_bias"], ["y"],
                                 transB=1)]
            return nodes, {k: weights[k] for k in training.WEIGHTS}, x.shape, x.dtype
        session = self._session(("predict", x.shape, x.dtype), build)
        return lambda: self._run(session, x)
