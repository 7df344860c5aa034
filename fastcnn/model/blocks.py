"""Blocks: what a model is made of. A block is a layer (a leaf: it holds the parameters)
or a model (a container of blocks, nested as deep as one likes: a Sequential inside a
graph, a Residual inside a Sequential, ...). This module holds what every container
does with its children, whatever connects them:

- their names, PyTorch's: "0", "1", ... or the names given, joined by dots down the
  tree ("features.3", "layer1.0.conv1"), which name the weights (state_dict) and the
  layers in error messages;
- freezing: whether a block trains (``trains``);
- files: a child described by its place in the outermost model's list of layers, or,
  for a nested container, by its own description (``describe``, ``rebuild``).
"""

from collections import OrderedDict

from ..nn.layers import Layer


def is_block(value):
    from .base import Model
    return isinstance(value, (Layer, Model))


def leaves(block):
    """The layers of a block, in the order its forward runs them."""
    return [block] if isinstance(block, Layer) else list(block.layers)


def trains(block):
    """Whether a block has parameters that train (a frozen one's get no gradient)."""
    return any(layer.params and layer.trainable for layer in leaves(block))


def brief(block):
    """A block in one line: a layer's constructor call, a container's kind and size."""
    if isinstance(block, Layer):
        return repr(block)
    return block.brief() if hasattr(type(block), "brief") else \
        f"{type(block).__name__}: {len(block.layers)} layers"


def named_children(owner, children):
    """children (a list or tuple, named "0", "1", ...; or a dict of names) as an ordered
    dict of blocks, checked."""
    if isinstance(children, dict):
        items = list(children.items())
    else:
        items = [(str(i), child) for i, child in enumerate(children)]
    named = OrderedDict()
    for name, child in items:
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"{owner}: a child's name must be a non-empty string without "
                             f"dots (dots join the names of nested blocks), got {name!r}")
        if not is_block(child):
            which = f"child {name!r}" if isinstance(children, dict) else f"argument {name}"
            raise TypeError(f"{owner}: {which} is not a layer or a model "
                            f"({type(child).__name__})")
        named[name] = child
    return named


def named_layers(children, prefix=""):
    """(dotted name, layer) of every layer under children, in forward order."""
    for name, child in children.items():
        path = prefix + name
        if isinstance(child, Layer):
            yield path, child
        else:
            yield from named_layers(child.children, path + ".")


def check_each_layer_once(owner, named):
    """A layer keeps what its last forward saved for its backward, so one layer object in
    two places of a model would compute wrong gradients: refused, naming both places."""
    seen = {}
    for path, layer in named:
        if id(layer) in seen:
            raise ValueError(
                f"{owner}: the same layer object {layer!r} is used twice, as "
                f"{seen[id(layer)]!r} and {path!r}. A layer keeps the arrays of one forward "
                f"pass for its backward, so it cannot appear in two places of one model "
                f"(shared weights are not supported); use two layers")
        seen[id(layer)] = path


# ---------------------------------------------------------------- files


def describe(block, position):
    """A child for a file: {"layer": i} for a layer (i its place in the outermost model's
    layers, position[id(layer)]), else the nested container's description, with its
    format."""
    if isinstance(block, Layer):
        return {"layer": position[id(block)]}
    return {"format": block.FORMAT, **block.describe(position)}


def rebuild(spec, layers):
    """The block a describe() spec names, made of layers (the file's, in order)."""
    from .io import FORMATS
    if not isinstance(spec, dict):
        raise ValueError(f"a child is {_short(spec)}, not a description")
    if "layer" in spec:
        i = spec["layer"]
        if type(i) is not int or not 0 <= i < len(layers):
            raise ValueError(f"a child names layer {_short(i)}; the file has {len(layers)}")
        return layers[i]
    name = spec.get("format")
    kind = FORMATS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise ValueError(f"a child has unknown format {_short(name)}")
    return kind.rebuild(spec, layers)


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
