"""Named weights: a model's parameters and buffers as a dict of NumPy arrays under
PyTorch's keys, and back.

A key is the layer's dotted name in the model (``Model.named_layers``: "0", "features.3",
"layer1.0.conv1") and the array's name in the layer ("weight", "bias", "running_mean",
"running_var"), shaped as PyTorch shapes them, so that the state_dict of a PyTorch model
with the same modules under the same names loads as it is (``{k: v.numpy() for k, v in
torch_model.state_dict().items()}``) and the other way round
(``torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in d.items()})``).

PyTorch's BatchNorm also keeps ``num_batches_tracked``, the number of training batches
it has seen, which it reads only when its momentum is None (a cumulative average).
fastcnn's BatchNorm always uses its momentum, so that key is accepted and ignored on
loading and not written (PyTorch's load_state_dict fills it in when it is missing).
"""

from collections import namedtuple

import numpy as np

from .. import backends

IGNORED = ("num_batches_tracked",)

IncompatibleKeys = namedtuple("IncompatibleKeys", "missing_keys unexpected_keys")


def _entries(model):
    """(key, layer, "params" or "buffers", name) of every array of the model, in order."""
    for path, layer in model.named_layers():
        for kind in ("params", "buffers"):
            for name in getattr(layer, kind):
                yield f"{path}.{name}", layer, kind, name


def state_dict(model):
    """{key: NumPy array} of every parameter and running statistic, under PyTorch's key
    names ("0.weight", "features.3.bias", "bn1.running_mean"): copies, on the host, in
    the layers' order."""
    return {key: np.array(backends.to_host(getattr(layer, kind)[name]))
            for key, layer, kind, name in _entries(model)}


def load_state_dict(model, arrays, strict=True):
    """Set the parameters and running statistics from arrays, a dict {key: array} with
    the keys state_dict() gives (NumPy arrays, or anything np.asarray takes: PyTorch CPU
    tensors), each cast to the model's dtype and moved where the model is.

    strict=True: the keys must be exactly the model's (BatchNorm's num_batches_tracked
    aside): a missing or an unexpected key is a ValueError naming them. strict=False loads
    the keys both have and returns (missing_keys, unexpected_keys), as PyTorch does.
    A shape that differs is always a ValueError, naming the key and both shapes; nothing
    is changed unless every array fits."""
    if not hasattr(arrays, "items"):
        raise TypeError(f"load_state_dict: expects a dict of arrays, got {type(arrays).__name__}")
    entries = {key: (layer, kind, name) for key, layer, kind, name in _entries(model)}
    ignored = {key for key in arrays if _ignored(key, entries)}
    missing = [key for key in entries if key not in arrays]
    unexpected = [key for key in arrays if key not in entries and key not in ignored]
    if strict and (missing or unexpected):
        raise ValueError(f"load_state_dict: {_keys('missing', missing)}"
                         f"{'; ' if missing and unexpected else ''}"
                         f"{_keys('unexpected', unexpected)} (the model's keys: "
                         f"{_first(list(entries))})")
    values, wrong = {}, []
    for key, (layer, kind, name) in entries.items():
        if key not in arrays:
            continue
        mine = getattr(layer, kind)[name]
        value = np.asarray(_host(arrays[key]))
        if tuple(value.shape) != tuple(mine.shape):
            wrong.append(f"{key}: {tuple(value.shape)} in the dict, {tuple(mine.shape)} in "
                         f"the model")
        elif value.dtype.kind not in "fiub":
            raise TypeError(f"load_state_dict: {key} holds {value.dtype}, not numbers")
        values[key] = value
    if wrong:
        raise ValueError(f"load_state_dict: shapes differ for {len(wrong)} key(s): "
                         + "; ".join(wrong[:10]))
    move = backends.mover(model.device)
    for key, value in values.items():
        layer, kind, name = entries[key]
        arrays_of = getattr(layer, kind)
        arrays_of[name] = move(np.ascontiguousarray(value, arrays_of[name].dtype))
    model.forget()
    return IncompatibleKeys(missing, unexpected)


def _ignored(key, entries):
    """A key fastcnn has no place for and drops: BatchNorm's num_batches_tracked."""
    prefix, _, name = key.rpartition(".")
    return name in IGNORED and f"{prefix}.running_mean" in entries


def _host(value):
    """A PyTorch tensor (on any device) as a NumPy array; anything else as it is."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    if backends.on_gpu(value):
        return backends.to_host(value)
    return value


def _keys(what, keys):
    return f"{len(keys)} {what} key(s): {_first(keys)}" if keys else ""


def _first(keys, n=8):
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")
