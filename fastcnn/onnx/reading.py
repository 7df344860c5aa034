"""Reading an ONNX file that nobody vouches for: the protobuf, its tensors, its external
data, its attributes and the order of its nodes, each checked before it is used.

- The file is read whole (protobuf has no other way) and parsed with protobuf's own
  parser, which executes nothing and stops at a nesting depth; bytes that do not parse
  are an error, not a crash.
- A tensor's element count is the product of its dims, computed with Python ints and
  compared with the number of bytes or values that really hold it before any array is
  made; so a tensor claiming 10**18 elements costs nothing and a valid one costs no
  more than its data.
- External data (a tensor stored in a separate file) is read only from a file beside
  the model or in a folder below it: a relative path without "..", which, with links
  followed, stays inside the model's folder; the byte range is checked against the
  file's size.
- The nodes are put in an order where each comes after what it reads; a node reading a
  value nobody makes, two nodes making one value, or a cycle is an error naming them.
"""

import heapq
import math
import os

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from . import OnnxImportError

# ONNX TensorProto.DataType -> (NumPy dtype, the typed field its values may sit in)
TENSOR_TYPES = {
    1: (np.float32, "float_data"), 2: (np.uint8, "int32_data"), 3: (np.int8, "int32_data"),
    5: (np.int16, "int32_data"), 6: (np.int32, "int32_data"), 7: (np.int64, "int64_data"),
    9: (np.bool_, "int32_data"), 10: (np.float16, "int32_data"),
    11: (np.float64, "double_data"), 12: (np.uint32, "uint64_data"),
    13: (np.uint64, "uint64_data"),
}
FLOAT_TYPES = {1: np.float32, 11: np.float64}
MAX_RANK = 32


def read_model(source):
    """(ModelProto, folder of its external data or None) from a path or the bytes of a
    file."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, folder, where = bytes(source), None, "the ONNX bytes"
    else:
        path = os.fspath(source)
        with open(path, "rb") as f:      # a missing file: FileNotFoundError, as open's
            data = f.read()
        folder, where = os.path.dirname(os.path.abspath(path)), repr(path)
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise OnnxImportError(f"{where} is not an ONNX model, or is truncated or corrupted: "
                              f"the protobuf does not parse ({e})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise OnnxImportError(f"{where} holds no ONNX graph with nodes (not an ONNX model, "
                              f"or a truncated one)")
    _check_names(model, where)
    return model, folder


def _check_names(model, where):
    """Every name the importer reads is text: protobuf hands a string field that is not
    valid UTF-8 over as bytes, which a corrupted file would slip in."""
    g = model.graph
    names = [o.domain for o in model.opset_import]
    names += [v.name for v in list(g.input) + list(g.output) + list(g.initializer)]
    for node in g.node:
        names += [node.name, node.op_type, node.domain, *node.input, *node.output]
        names += [a.name for a in node.attribute]
    for t in g.initializer:
        names += [e.key for e in t.external_data] + [e.value for e in t.external_data]
    if not all(isinstance(n, str) for n in names):
        raise OnnxImportError(f"{where} is corrupted: a name in it is not UTF-8 text")


# ---------------------------------------------------------------- tensors


def to_array(tensor, folder, what):
    """A TensorProto's values as a NumPy array, checked as the module says."""
    kind = TENSOR_TYPES.get(tensor.data_type)
    if kind is None:
        name = onnx.TensorProto.DataType.Name(tensor.data_type) \
            if tensor.data_type in onnx.TensorProto.DataType.values() else tensor.data_type
        raise OnnxImportError(f"{what}: tensors of type {name} are not supported (fastcnn "
                              f"reads float, double, float16 and integer tensors)")
    dtype, field = np.dtype(kind[0]), kind[1]
    dims = list(tensor.dims)
    if len(dims) > MAX_RANK or any(d < 0 for d in dims):
        raise OnnxImportError(f"{what}: invalid dims {dims[:MAX_RANK + 1]}")
    count = math.prod(dims)
    if tensor.HasField("segment"):
        raise OnnxImportError(f"{what}: segmented tensors are not supported")
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        raw = _external(tensor, folder, count * dtype.itemsize, what)
    elif tensor.HasField("raw_data"):
        raw = tensor.raw_data
    else:
        values = getattr(tensor, field)
        if len(values) != count:
            raise OnnxImportError(f"{what}: dims {dims} make {count} values, but the tensor "
                                  f"holds {len(values)}")
        if tensor.data_type == 10:    # float16 values sit in int32_data as their bits
            return np.array(values, np.uint16).view(np.float16).reshape(dims)
        return np.array(values, dtype).reshape(dims)
    if len(raw) != count * dtype.itemsize:
        raise OnnxImportError(f"{what}: dims {dims} make {count} values of "
                              f"{dtype.itemsize} bytes, but the tensor holds {len(raw)} bytes")
    return np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype).reshape(dims)


def _external(tensor, folder, nbytes, what):
    """The bytes of a tensor stored in a file beside the model (checked as the module
    says)."""
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    if folder is None:
        raise OnnxImportError(f"{what}: its data is in an external file ({location!r}); "
                              f"load the model from its path, not from bytes")
    parts = location.replace("\\", "/").split("/")
    if (not location or os.path.isabs(location) or location.startswith(("/", "\\"))
            or os.path.splitdrive(location)[0] or ".." in parts or "\0" in location):
        raise OnnxImportError(f"{what}: external data location {location!r} is not a "
                              f"relative path inside the model's folder (no absolute paths, "
                              f"no '..')")
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, *parts))
    if os.path.commonpath([root, path]) != root:
        raise OnnxImportError(f"{what}: external data location {location!r} leads out of "
                              f"the model's folder (through a link)")
    if not os.path.isfile(path):
        raise OnnxImportError(f"{what}: external data file {location!r} not found beside "
                              f"the model")
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        raise OnnxImportError(f"{what}: external data offset or length is not an integer: "
                              f"{info}") from None
    size = os.path.getsize(path)
    if offset < 0 or (length is not None and length != nbytes) or offset + nbytes > size:
        raise OnnxImportError(f"{what}: the tensor needs {nbytes} bytes at offset {offset} "
                              f"of {location!r} (length {length}), which has {size}")
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(nbytes)


# ---------------------------------------------------------------- attributes


class Attributes:
    """A node's attributes, taken one by one by the converter that knows them; any left
    over at the end is an attribute fastcnn does not support (``leftover``)."""

    def __init__(self, node, where, folder):
        self.where, self._folder = where, folder
        self._attrs = {}
        for a in node.attribute:
            if a.name in self._attrs:
                raise OnnxImportError(f"{where}: attribute {a.name!r} is given twice")
            self._attrs[a.name] = a

    def take(self, name, default=None):
        """The attribute's value (an int, a float, a str, a list, an array), or default."""
        a = self._attrs.pop(name, None)
        if a is None:
            return default
        T = onnx.AttributeProto
        kind = a.type if a.type != T.UNDEFINED else _kind(a)   # old writers leave it out
        if kind == T.INT:
            return int(a.i)
        if kind == T.FLOAT:     # a float32: its shortest decimal (1e-05, not 9.99999974e-06)
            return float(str(np.float32(a.f)))
        if kind == T.STRING:
            return a.s.decode("utf-8", "replace")
        if kind == T.INTS:
            return [int(v) for v in a.ints]
        if kind == T.FLOATS:
            return [float(str(np.float32(v))) for v in a.floats]
        if kind == T.TENSOR:
            return to_array(a.t, self._folder, f"{self.where}: attribute {name!r}")
        kind = T.AttributeType.Name(kind) if kind in T.AttributeType.values() else kind
        raise OnnxImportError(f"{self.where}: attribute {name!r} is of a kind fastcnn does "
                              f"not read ({kind})")

    def unsupported(self, name, value, reason):
        return OnnxImportError(f"{self.where}: attribute {name}={value!r} is not supported "
                               f"({reason})")

    def expect(self, name, default, *allowed, reason="fastcnn has no layer for it"):
        """Take an attribute that must have one of the allowed values (default: its default)."""
        value = self.take(name, default)
        if value not in (allowed or (default,)):
            raise self.unsupported(name, value, reason)
        return value

    def leftover(self):
        if self._attrs:
            name = next(iter(self._attrs))
            raise OnnxImportError(f"{self.where}: attribute {name!r} is not supported "
                                  f"(fastcnn does not know what it asks for here)")


def _kind(a):
    """The type of an attribute written without one, from the field that holds it."""
    T = onnx.AttributeProto
    for kind, field in ((T.INT, "i"), (T.FLOAT, "f"), (T.STRING, "s"), (T.TENSOR, "t")):
        if a.HasField(field):
            return kind
    for kind, field in ((T.INTS, "ints"), (T.FLOATS, "floats")):
        if len(getattr(a, field)):
            return kind
    return T.UNDEFINED


# ---------------------------------------------------------------- the graph


def ordered_nodes(graph, known):
    """graph's nodes in an order where each comes after the nodes making its inputs
    (Kahn's algorithm, keeping the file's order where it is one). known: the names of
    the values given before any node runs (inputs and initializers)."""
    maker = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            if not out:
                continue
            if out in maker or out in known:
                other = "another node" if out in maker else "an input or initializer"
                raise OnnxImportError(f"{describe(node, i)} makes the value {out!r}, which "
                                      f"{other} already gives")
            maker[out] = i
    waiting, users = [0] * len(graph.node), [[] for _ in graph.node]
    for i, node in enumerate(graph.node):
        for name in set(v for v in node.input if v):
            if name in maker:
                waiting[i] += 1
                users[maker[name]].append(i)
            elif name not in known:
                raise OnnxImportError(f"{describe(node, i)} reads the value {name!r}, which "
                                      f"no node, input or initializer gives")
    ready = [i for i in range(len(graph.node)) if not waiting[i]]
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in users[i]:
            waiting[j] -= 1
            if not waiting[j]:
                heapq.heappush(ready, j)
    if len(order) < len(graph.node):
        stuck = [describe(graph.node[i], i) for i in range(len(graph.node)) if waiting[i]]
        raise OnnxImportError(f"the graph has a cycle: {len(stuck)} node(s) wait on each "
                              f"other, e.g. {', '.join(stuck[:4])}")
    return [graph.node[i] for i in order]


def describe(node, i=None):
    """How messages name a node: 'node "conv1" (Conv)'."""
    name = node.name or (f"#{i}" if i is not None else "(unnamed)")
    return f"node {name!r} ({node.op_type})"
