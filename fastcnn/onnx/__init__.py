"""fastcnn.onnx: models out to ONNX and in from ONNX (needs the ``onnx`` package:
``pip install "fastcnn[onnx]"``).

    fastcnn.onnx.export(model, "cnn.onnx", input_shape=(1, 28, 28))   # for ONNX Runtime
    model = fastcnn.onnx.load("resnet.onnx")          # a Sequential or a Graph, trainable

- ``export(model, path, input_shape, opset=17)``: every layer and container of fastcnn
  as standard ONNX operators (``exporting``), the batch dimension left dynamic;
- ``load(path)``: an ONNX file as a fastcnn model whose initializers are its parameters
  (``reading`` checks the file, ``importing`` builds the model, ``ops`` converts each
  operator). The file is untrusted input: nothing in it runs, no array is allocated
  before its size is checked against the bytes that hold it, external data is read only
  from beside the model file, and anything wrong is an ``OnnxImportError``.
"""

DEFAULT_OPSET = 17      # what export writes unless told otherwise
MIN_OPSET = 13          # the oldest opset export writes (load reads from opset 7 on)


class OnnxImportError(ValueError):
    """An ONNX file fastcnn cannot load: not ONNX, truncated, malformed, unsafe, or using an
    operator or attribute that fastcnn has no layer for (the message names the node)."""


def _require_onnx():
    try:
        import onnx
    except ImportError as e:
        raise ImportError("fastcnn.onnx needs the onnx package: pip install "
                          "\"fastcnn[onnx]\" (or pip install onnx)") from e
    return onnx


def export(model, path, input_shape=None, opset=DEFAULT_OPSET, *, input_names=None,
           output_names=None):
    """Write model (a fastcnn model, or one layer) to path as an ONNX file of the given
    opset (13 to the newest the onnx package knows) and return its ModelProto.

    input_shape: one example's shape without the batch axis, e.g. (1, 28, 28) (a list of
    them for a graph of several inputs); by default the graph's Input shapes, or the
    shape of the last batch the model saw. input_names / output_names: the names of the
    graph's inputs and outputs (default: a graph's Input and output node names, else
    "input" and "output"). The batch dimension is dynamic ("N"); the model is written
    as it predicts: BatchNorm with its running statistics, Dropout as the identity."""
    _require_onnx()
    from .exporting import export as export_model
    return export_model(model, path, input_shape, opset, input_names=input_names,
                        output_names=output_names)


def load(source, input_shape=None):
    """The ONNX model in the file at source (a path, or the file's bytes) as a fastcnn
    model whose parameters are the file's initializers (so it fine-tunes): a Sequential
    when its layers form a chain, else a Graph. input_shape: one example's shape without
    the batch axis (a list for several inputs), for a file that leaves it open.

    Raises OnnxImportError (a ValueError) for a file that is not a well-formed ONNX
    model, and for an operator or attribute fastcnn has no layer for, naming the node,
    the operator and the attribute; ``supported_operators()`` lists what it converts."""
    _require_onnx()
    from .importing import load as load_model
    return load_model(source, input_shape)


def supported_operators():
    """The ONNX operators (default domain) that load converts, sorted."""
    _require_onnx()
    from .ops import CONVERTERS
    return sorted(CONVERTERS)


__all__ = ["export", "load", "supported_operators", "OnnxImportError", "DEFAULT_OPSET",
           "MIN_OPSET"]
