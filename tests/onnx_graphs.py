"""ONNX graphs written with onnx.helper, one or a few operators each, for the importer's
tests: every operator fastcnn.onnx.load converts, with the attributes it supports."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper, shape_inference

rng = np.random.default_rng(0)


def w(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def ints(*values):
    return np.array(values, np.int64)


def graph(nodes, x_shape, inits=None, opset=17, outputs=("y",), static_batch=None,
          out_shape=None):
    """A ModelProto: input "x" of shape (N, *x_shape), the nodes, initializers {name:
    array}, outputs by name (their shapes left to ONNX's shape inference)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                      [static_batch or "N"] + list(x_shape))
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, out_shape) for o in outputs]
    tensors = [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()]
    opsets = [helper.make_opsetid("", opset)]
    ir_version = helper.find_min_ir_version_for(opsets)
    inputs = [x] + ([helper.make_tensor_value_info(t.name, t.data_type, t.dims) for t in tensors]
                    if ir_version < 4 else [])     # IR 3 lists the initializers as inputs
    model = helper.make_model(helper.make_graph(nodes, "test", inputs, outs, tensors),
                              opset_imports=opsets, ir_version=ir_version)
    return shape_inference.infer_shapes(model)


def node(op, inputs, outputs=("y",), name=None, **attrs):
    return helper.make_node(op, list(inputs), list(outputs), name=name or f"{op.lower()}_node",
                            **attrs)


def _conv(x_shape=(2, 7, 7), cout=3, k=(3, 3), bias=True, opset=17, **attrs):
    inits = {"W": w(cout, x_shape[0], *k)}
    if bias:
        inits["B"] = w(cout)
    return graph([node("Conv", ["x", "W"] + (["B"] if bias else []), **attrs)], x_shape, inits,
                 opset)


def _pad_then(op, opset, padded=(0, 0, 1, 2, 0, 0, 1, 2), **attrs):
    """A Pad of x by padded (zeros) in front of op (attrs: op's)."""
    if opset >= 11:
        pad = node("Pad", ["x", "pads"], ["p"], mode="constant")
        inits = {"pads": ints(*padded)}
    else:
        pad, inits = node("Pad", ["x"], ["p"], pads=list(padded), value=0.0), {}
    if op == "Conv":
        inits["W"] = w(3, 2, 3, 3)
        return graph([pad, node("Conv", ["p", "W"], **attrs)], (2, 6, 6), inits, opset)
    return graph([pad, node(op, ["p"], **attrs)], (2, 6, 6), inits, opset)


def _conv_transpose(x_shape=(4, 3, 4), cout=3, k=(3, 3), group=1, bias=True, opset=17,
                    **attrs):
    inits = {"W": w(x_shape[0], cout // group, *k)}
    if bias:
        inits["B"] = w(cout)
    return graph([node("ConvTranspose", ["x", "W"] + (["B"] if bias else []), group=group,
                       **attrs)], x_shape, inits, opset)


def _pool(op, x_shape=(2, 7, 7), opset=19, **attrs):
    return graph([node(op, ["x"], **attrs)], x_shape, opset=opset)


def _gemm(trans_b=1, c_shape=(4,), **attrs):
    b = w(4, 6) if trans_b else w(6, 4)
    inits = {"B": b}
    if c_shape is not None:
        inits["C"] = w(*c_shape)
    return graph([node("Gemm", ["x", "B"] + (["C"] if c_shape is not None else []),
                       transB=trans_b, **attrs)], (6,), inits)


def _two_branches(op, **attrs):
    """Two 1x1 convolutions of x merged by op."""
    nodes = [node("Conv", ["x", "W1"], ["a"], "conv1"), node("Conv", ["x", "W2"], ["b"], "conv2"),
             node(op, ["a", "b"], **attrs)]
    return graph(nodes, (2, 4, 4), {"W1": w(3, 2, 1, 1), "W2": w(3, 2, 1, 1)})


def _bn(x_shape, opset=15):
    c = x_shape[0]
    inits = {"s": w(c) * 0.3 + 1, "b": w(c), "m": w(c), "v": np.abs(w(c)) + 0.5}
    return graph([node("BatchNormalization", ["x", "s", "b", "m", "v"], epsilon=1e-3,
                       momentum=0.8)], x_shape, inits, opset)


def _view_flatten(opset=13):
    """PyTorch's x.view(x.size(0), -1): Shape, Gather, Unsqueeze, Concat, Reshape."""
    unsqueeze = node("Unsqueeze", ["n", "zero"], ["n1"]) if opset >= 13 else \
        node("Unsqueeze", ["n"], ["n1"], axes=[0])
    nodes = [node("Shape", ["x"], ["s"]), node("Gather", ["s", "i0"], ["n"], axis=0),
             unsqueeze, node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             node("Reshape", ["x", "shape"], ["f"]), node("Gemm", ["f", "B"], transB=1)]
    return graph(nodes, (2, 3, 3), {"i0": np.array(0, np.int64), "zero": ints(0),
                                    "minus1": ints(-1), "B": w(5, 18)}, opset, out_shape=["N", 5])


def _squeeze(opset):
    pool = node("GlobalAveragePool", ["x"], ["p"])
    sq = node("Squeeze", ["p", "axes"]) if opset >= 13 else node("Squeeze", ["p"], axes=[2, 3])
    return graph([pool, sq], (3, 4, 5), {"axes": ints(2, 3)} if opset >= 13 else {}, opset)


def _resize(opset, how="scales", **attrs):
    if opset == 10:
        return graph([node("Resize", ["x", "scales"], **attrs)], (2, 3, 4),
                     {"scales": np.array([1, 1, 2, 3], np.float32)}, opset)
    if how == "scales":
        inputs, inits = ["x", "", "scales"], {"scales": np.array([1, 1, 2, 2], np.float32)}
    elif how == "sizes":        # fixed, with the batch size of a static export
        inputs, inits = ["x", "", "", "sizes"], {"sizes": ints(3, 2, 9, 8)}
        return graph([node("Resize", inputs, **attrs)], (2, 3, 4), inits, opset, static_batch=3)
    else:                       # computed: (N, C) of x and (9, 8)
        nodes = [node("Shape", ["x"], ["s"]), node("Slice", ["s", "zero", "two"], ["nc"]),
                 node("Concat", ["nc", "hw"], ["sizes"], axis=0),
                 node("Resize", ["x", "", "", "sizes"], **attrs)]
        return graph(nodes, (2, 3, 4), {"zero": ints(0), "two": ints(2), "hw": ints(9, 8)},
                     opset, out_shape=["N", 2, 9, 8])
    return graph([node("Resize", inputs, **attrs)], (2, 3, 4), inits, opset)


def _resized(how, values, x_shape=(2, 3, 4), opset=19, **attrs):
    """A Resize of x by scales or to sizes (for H and W) given as an initializer."""
    if how == "scales":
        inputs, inits = ["x", "", "r"], {"r": np.array([1, 1] + list(values), np.float32)}
    else:
        inputs, inits = ["x", "", "", "r"], {"r": ints(3, x_shape[0], *values)}
    return graph([node("Resize", inputs, **attrs)], x_shape, inits, opset,
                 static_batch=3 if how == "sizes" else None)


def _torch_pad():
    """F.pad(x, (0, 1, 1, 0)) then a Conv as torch.onnx.export writes it: the pads (left,
    right, top, bottom) turned into ONNX's by ConstantOfShape, Concat, Reshape, a
    reversing Slice, Transpose, Reshape and Cast."""
    zero = helper.make_tensor("value", TensorProto.INT64, [1], [0])
    nodes = [node("ConstantOfShape", ["four"], ["z"], value=zero),
             node("Concat", ["given", "z"], ["c"], axis=0),
             node("Reshape", ["c", "pairs"], ["r"]),
             node("Slice", ["r", "minus1", "low", "zero", "minus1"], ["s"]),
             node("Transpose", ["s"], ["t"], perm=[1, 0]),
             node("Reshape", ["t", "minus1"], ["f"], "flat"),
             node("Cast", ["f"], ["pads"], to=TensorProto.INT64),
             node("Pad", ["x", "pads"], ["p"], mode="constant"), node("Conv", ["p", "W"])]
    return graph(nodes, (2, 5, 5), {"four": ints(4), "given": ints(0, 1, 1, 0),
                                    "pairs": ints(-1, 2), "minus1": ints(-1),
                                    "low": ints(-2**63), "zero": ints(0), "W": w(3, 2, 3, 3)})


def _torch_unflatten():
    """nn.Unflatten(1, (2, 3)) as torch.onnx.export writes it: the axis taken Mod the
    rank, the shape sliced around it."""
    nodes = [node("Mod", ["one", "rank"], ["axis"]), node("Shape", ["x"], ["shape"]),
             node("Slice", ["shape", "zero", "axis"], ["head"]),
             node("Add", ["axis", "one"], ["next"]),
             node("Slice", ["shape", "next", "big"], ["tail"], "tail"),
             node("Concat", ["head", "sizes", "tail"], ["target"], axis=0),
             node("Reshape", ["x", "target"])]
    return graph(nodes, (6, 4), {"one": ints(1), "rank": ints(3), "zero": ints(0),
                                 "big": ints(2**62), "sizes": ints(2, 3)},
                 out_shape=["N", 2, 3, 4])


def _constants():
    """Constant, Cast and Identity computing a Reshape target, then Identity on a tensor."""
    nodes = [node("Constant", [], ["c"], value=numpy_helper.from_array(
                 np.array([0, -1], np.float32))),
             node("Cast", ["c"], ["shape"], to=TensorProto.INT64),
             node("Identity", ["shape"], ["shape2"]),
             node("Reshape", ["x", "shape2"], ["f"]), node("Identity", ["f"], ["g"], "id2"),
             node("Relu", ["g"])]
    return graph(nodes, (2, 2, 2))


CASES = {
    "Conv": lambda: _conv(pads=[1, 1, 1, 1]),
    "Conv no bias, strides": lambda: _conv(bias=False, strides=[2, 2]),
    "Conv dilations, kernel_shape": lambda: _conv(dilations=[2, 2], pads=[2, 1, 2, 1],
                                                  kernel_shape=[3, 3]),
    "Conv rect": lambda: _conv(k=(3, 1), strides=[1, 2], pads=[1, 0, 1, 0]),
    "Conv auto_pad SAME_UPPER": lambda: _conv(auto_pad="SAME_UPPER"),
    "Conv auto_pad VALID": lambda: _conv(auto_pad="VALID"),
    "Conv opset 7": lambda: _conv(opset=7, pads=[1, 1, 1, 1]),
    "Conv asymmetric pads": lambda: _conv(pads=[1, 0, 2, 1]),
    "Conv SAME_UPPER even kernel": lambda: _conv(k=(2, 4), auto_pad="SAME_UPPER"),
    "Conv SAME_LOWER strides": lambda: _conv(k=(4, 3), strides=[2, 2], auto_pad="SAME_LOWER"),
    "Pad asymmetric + Conv": lambda: _pad_then("Conv", 13, (0, 0, 1, 0, 0, 0, 2, 1)),
    "Pad + Conv with pads": lambda: _pad_then("Conv", 18, (0, 0, 0, 1, 0, 0, 1, 0),
                                              pads=[1, 0, 0, 1]),
    "Pad asymmetric + AveragePool": lambda: _pad_then("AveragePool", 13, (0, 0, 0, 1, 0, 0, 1, 0),
                                                      kernel_shape=[3, 3]),
    "Pad + AveragePool ceil_mode": lambda: _pad_then("AveragePool", 19, (0, 0, 1, 0, 0, 0, 0, 0),
                                                     kernel_shape=[3, 3], strides=[2, 2],
                                                     ceil_mode=1),
    "Pad + AveragePool with pads": lambda: _pad_then("AveragePool", 19, (0, 0, 1, 0, 0, 0, 0, 1),
                                                     kernel_shape=[3, 3], pads=[0, 1, 0, 0],
                                                     count_include_pad=1),
    "ConvTranspose": lambda: _conv_transpose(strides=[2, 2], pads=[1, 1, 1, 1],
                                             output_padding=[1, 1]),
    "ConvTranspose no bias, opset 7": lambda: _conv_transpose(bias=False, opset=7),
    "ConvTranspose groups, dilations": lambda: _conv_transpose(
        cout=6, k=(2, 3), group=2, strides=[2, 1], dilations=[1, 2]),
    "ConvTranspose depthwise": lambda: _conv_transpose(cout=4, group=4, strides=[2, 2]),
    "ConvTranspose asymmetric pads": lambda: _conv_transpose(strides=[2, 3],
                                                             pads=[0, 1, 2, 0]),
    "ConvTranspose output_shape": lambda: _conv_transpose(strides=[2, 2],
                                                          output_shape=[5, 9]),
    "ConvTranspose SAME_UPPER": lambda: _conv_transpose(strides=[2, 2], k=(4, 4),
                                                        auto_pad="SAME_UPPER"),
    "ConvTranspose SAME_UPPER, odd": lambda: _conv_transpose(strides=[2, 2],
                                                             auto_pad="SAME_UPPER"),
    "ConvTranspose SAME_LOWER, odd": lambda: _conv_transpose(strides=[2, 3],
                                                             auto_pad="SAME_LOWER"),
    "ConvTranspose output_shape, odd": lambda: _conv_transpose(strides=[2, 2],
                                                               output_shape=[6, 8]),
    "ConvTranspose output_shape, SAME_UPPER": lambda: _conv_transpose(
        strides=[2, 2], output_shape=[6, 8], auto_pad="SAME_UPPER"),
    "ConvTranspose VALID": lambda: _conv_transpose(strides=[2, 2], auto_pad="VALID"),
    "Pad + Conv": lambda: _pad_then("Conv", 13),
    "Pad (opset 9) + Conv": lambda: _pad_then("Conv", 9),
    "Pad + AveragePool": lambda: _pad_then("AveragePool", 18, kernel_shape=[3, 5]),
    "MaxPool": lambda: graph([node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2])],
                             (2, 6, 7)),
    "MaxPool pads": lambda: graph([node("MaxPool", ["x"], kernel_shape=[3, 3],
                                        strides=[2, 2], pads=[1, 1, 1, 1])], (2, 7, 7)),
    "MaxPool SAME_UPPER": lambda: graph([node("MaxPool", ["x"], kernel_shape=[3, 3],
                                              auto_pad="SAME_UPPER")], (2, 5, 5)),
    "MaxPool ceil_mode": lambda: _pool("MaxPool", kernel_shape=[3, 3], strides=[2, 2],
                                       ceil_mode=1, x_shape=(2, 8, 8)),
    "MaxPool ceil_mode, window in the padding": lambda: _pool(   # PyTorch's 2 rows, not 3
        "MaxPool", kernel_shape=[2, 2], strides=[2, 2], pads=[1, 0, 1, 0], ceil_mode=1,
        x_shape=(2, 3, 4)),
    "MaxPool dilations": lambda: _pool("MaxPool", kernel_shape=[2, 3], dilations=[2, 2],
                                       strides=[1, 2], x_shape=(2, 6, 7)),
    "MaxPool dilations, pads, ceil_mode": lambda: _pool(
        "MaxPool", kernel_shape=[3, 3], dilations=[2, 1], strides=[2, 2], pads=[1, 1, 1, 0],
        ceil_mode=1, opset=12),
    "MaxPool asymmetric pads": lambda: _pool("MaxPool", kernel_shape=[3, 2], strides=[2, 1],
                                             pads=[0, 1, 1, 0]),
    "MaxPool SAME_LOWER": lambda: _pool("MaxPool", kernel_shape=[2, 2], strides=[1, 1],
                                        auto_pad="SAME_LOWER", x_shape=(2, 5, 5)),
    "AveragePool count_include_pad=0": lambda: _pool(
        "AveragePool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    "AveragePool asymmetric pads, count_include_pad=0": lambda: _pool(
        "AveragePool", kernel_shape=[3, 3], pads=[1, 0, 0, 1], opset=11),
    "AveragePool asymmetric pads, count_include_pad=1": lambda: _pool(
        "AveragePool", kernel_shape=[3, 2], pads=[0, 1, 1, 0], count_include_pad=1),
    "AveragePool ceil_mode": lambda: _pool("AveragePool", kernel_shape=[3, 3],
                                           strides=[2, 2], ceil_mode=1, x_shape=(2, 8, 8)),
    "AveragePool ceil_mode, pads, count_include_pad=0": lambda: _pool(
        "AveragePool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1,
        x_shape=(2, 6, 8)),
    "AveragePool ceil_mode, pads, count_include_pad=1": lambda: _pool(
        "AveragePool", kernel_shape=[3, 2], strides=[2, 2], pads=[1, 1, 0, 1], ceil_mode=1,
        count_include_pad=1, x_shape=(2, 6, 8)),
    "AveragePool": lambda: graph([node("AveragePool", ["x"], kernel_shape=[2, 3])],
                                 (2, 6, 6)),
    "AveragePool pads": lambda: graph([node("AveragePool", ["x"], kernel_shape=[3, 3],
                                            strides=[1, 1], pads=[1, 1, 1, 1],
                                            count_include_pad=1)], (2, 5, 5)),
    "GlobalAveragePool": lambda: graph([node("GlobalAveragePool", ["x"])], (3, 4, 5)),
    "GlobalMaxPool": lambda: graph([node("GlobalMaxPool", ["x"])], (3, 4, 5)),
    "ReduceMean": lambda: graph([node("ReduceMean", ["x"], axes=[2, 3], keepdims=0)],
                                (3, 4, 5), opset=13),
    "ReduceMax (opset 18)": lambda: graph([node("ReduceMax", ["x", "axes"], keepdims=1)],
                                          (3, 4, 5), {"axes": ints(-2, -1)}, opset=18),
    "Gemm": lambda: _gemm(),
    "Gemm transB=0, alpha, beta": lambda: _gemm(0, (1, 4), alpha=0.5, beta=2.0),
    "Gemm no C": lambda: _gemm(1, None),
    "Gemm scalar C": lambda: _gemm(1, (1,)),
    "MatMul": lambda: graph([node("MatMul", ["x", "B"])], (6,), {"B": w(6, 4)}),
    "MatMul + Add": lambda: graph([node("MatMul", ["x", "B"], ["h"]),
                                   node("Add", ["bias", "h"])], (6,), {"B": w(6, 4),
                                                                       "bias": w(4)}),
    "Conv + Add bias": lambda: graph([node("Conv", ["x", "W"], ["h"]),
                                      node("Add", ["h", "b"])], (2, 4, 4),
                                     {"W": w(3, 2, 3, 3), "b": w(1, 3, 1, 1)}),
    "Add": lambda: _two_branches("Add"),
    "Sum": lambda: _two_branches("Sum"),
    "Mul": lambda: _two_branches("Mul"),
    "Concat": lambda: _two_branches("Concat", axis=1),
    "Concat axis -3": lambda: _two_branches("Concat", axis=-3),
    "Relu": lambda: graph([node("Relu", ["x"])], (3, 4)),
    "LeakyRelu": lambda: graph([node("LeakyRelu", ["x"], alpha=0.2)], (3, 4)),
    "LeakyRelu default": lambda: graph([node("LeakyRelu", ["x"])], (3,)),
    "Elu": lambda: graph([node("Elu", ["x"], alpha=0.6)], (3, 4)),
    "Sigmoid": lambda: graph([node("Sigmoid", ["x"])], (2, 3, 3)),
    "Tanh": lambda: graph([node("Tanh", ["x"])], (2, 3, 3)),
    "Softmax": lambda: graph([node("Softmax", ["x"])], (7,)),
    "Softmax opset 11 axis 1": lambda: graph([node("Softmax", ["x"], axis=1)], (7,),
                                             opset=11),
    "BatchNormalization": lambda: _bn((3, 4, 4)),
    "BatchNormalization (N, C) opset 9": lambda: _bn((5,), opset=9),
    "BatchNormalization (N, C, L)": lambda: _bn((3, 6), opset=14),
    "Dropout": lambda: graph([node("Dropout", ["x", "ratio"])], (3, 4),
                             {"ratio": np.array(0.3, np.float32)}, opset=13),
    "Dropout opset 10": lambda: graph([node("Dropout", ["x"], ["y", "mask"], ratio=0.2)],
                                      (3, 4), opset=10),
    "Flatten": lambda: graph([node("Flatten", ["x"], axis=1)], (2, 3, 4)),
    "Reshape": lambda: graph([node("Reshape", ["x", "s"])], (2, 3, 4), {"s": ints(0, -1)}),
    "Reshape -1 batch": lambda: graph([node("Reshape", ["x", "s"])], (2, 3, 4),
                                      {"s": ints(-1, 24)}),
    "Reshape static batch": lambda: graph([node("Reshape", ["x", "s"])], (2, 3, 4),
                                          {"s": ints(1, 24)}, static_batch=1),
    "Reshape to images": lambda: graph([node("Gemm", ["x", "B"], ["h"], transB=1),
                                        node("Reshape", ["h", "s"], ["r"]),
                                        node("Conv", ["r", "W"])], (6,),
                                       {"B": w(24, 6), "s": ints(-1, 2, 3, 4),
                                        "W": w(3, 2, 1, 1)}),
    "Reshape merging axes": lambda: graph([node("Reshape", ["x", "s"])], (2, 3, 4),
                                          {"s": ints(0, 6, 4)}),
    "Reshape splitting an axis": lambda: graph([node("Reshape", ["x", "s"])], (6, 4),
                                               {"s": ints(0, 2, 3, 4)}),
    "Reshape anyhow": lambda: graph([node("Reshape", ["x", "s"])], (2, 3, 4),
                                    {"s": ints(0, 4, -1)}),
    "Unsqueeze": lambda: graph([node("Unsqueeze", ["x", "a"], ["u"]),
                                node("Conv", ["u", "W"])], (3,), {"a": ints(-1, 2),
                                                                  "W": w(2, 3, 1, 1)}),
    "Unsqueeze opset 11": lambda: graph([node("Unsqueeze", ["x"], axes=[1])], (3, 4),
                                        opset=11),
    "view(x.size(0), -1)": lambda: _view_flatten(13),
    "view(x.size(0), -1) opset 11": lambda: _view_flatten(11),
    "Squeeze": lambda: _squeeze(13),
    "Squeeze opset 11": lambda: _squeeze(11),
    "Resize scales": lambda: _resize(13, mode="nearest",
                                     coordinate_transformation_mode="asymmetric",
                                     nearest_mode="floor"),
    "Resize sizes half_pixel": lambda: _resize(13, "sizes", mode="nearest"),
    "Resize computed sizes": lambda: _resize(13, "computed", mode="nearest",
                                             coordinate_transformation_mode="half_pixel",
                                             nearest_mode="round_prefer_ceil"),
    "Resize tf_half_pixel_for_nn": lambda: _resize(
        13, mode="nearest", coordinate_transformation_mode="tf_half_pixel_for_nn",
        nearest_mode="floor"),
    "Resize opset 10": lambda: _resize(10, mode="nearest"),
    "Resize opset 19": lambda: _resize(19, mode="nearest",
                                       coordinate_transformation_mode="pytorch_half_pixel",
                                       nearest_mode="round_prefer_ceil"),
    "Resize linear half_pixel": lambda: _resized("scales", (2, 2), mode="linear"),
    "Resize linear pytorch_half_pixel sizes": lambda: _resized(
        "sizes", (7, 5), mode="linear", coordinate_transformation_mode="pytorch_half_pixel"),
    "Resize linear align_corners sizes": lambda: _resized(
        "sizes", (5, 9), mode="linear", coordinate_transformation_mode="align_corners"),
    "Resize linear align_corners scales": lambda: _resized(
        "scales", (2, 1.5), mode="linear", coordinate_transformation_mode="align_corners"),
    "Resize linear 1.5 and 0.5": lambda: _resized("scales", (1.5, 0.5), (2, 4, 6), mode="linear"),
    "Resize linear to a smaller size": lambda: _resized("sizes", (3, 5), (2, 7, 8), mode="linear"),
    "Resize nearest scales 1.5": lambda: _resized(
        "scales", (1.5, 2.5), mode="nearest", coordinate_transformation_mode="asymmetric",
        nearest_mode="floor"),
    "Resize nearest scales 0.5": lambda: _resized(
        "scales", (0.5, 0.5), (2, 6, 8), mode="nearest",
        coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    "Resize nearest sizes 7, 5": lambda: _resized(
        "sizes", (7, 5), mode="nearest", coordinate_transformation_mode="asymmetric",
        nearest_mode="floor"),
    "Resize nearest sizes half_pixel, integer factors": lambda: _resized(
        "sizes", (6, 12), mode="nearest", coordinate_transformation_mode="half_pixel"),
    "Resize opset 10 nearest 0.5": lambda: graph(
        [node("Resize", ["x", "s"], mode="nearest")], (2, 6, 4),
        {"s": np.array([1, 1, 0.5, 1], np.float32)}, 10),
    "Upsample opset 9": lambda: graph([node("Upsample", ["x", "s"], mode="nearest")],
                                      (2, 3, 4), {"s": np.array([1, 1, 2, 2], np.float32)},
                                      opset=9),
    "Upsample opset 7": lambda: graph([node("Upsample", ["x"], scales=[1.0, 1.0, 3.0, 2.0])],
                                      (2, 3, 4), opset=7),
    "Constant, Cast, Identity": _constants,
    "ConstantOfShape, Transpose: PyTorch's F.pad": _torch_pad,
    "Mod: PyTorch's nn.Unflatten": _torch_unflatten,
}
