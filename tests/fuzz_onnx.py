"""Fuzz cases for the ONNX and safetensors loaders (issue 15): a valid file written by
fastcnn (an ONNX export of a small model, or its state_dict as safetensors), made bad in
one way or left valid. The loaders may raise only their documented errors
(OnnxImportError, ModelFileError; FileNotFoundError or IsADirectoryError for a path
that is no file); a valid file's model must predict what the saved model predicts."""

import os
import pathlib

import numpy as np
from hypothesis import strategies as st

import fastcnn
from fastcnn.model import ModelFileError
from fuzz_files import TEMPLATES, predicts_as_saved
from fuzz_targets import host, serving
from fuzz_values import FLOATS

PATHS = ["str"] * 8 + ["pathlib", "missing", "dir"]


def _path(kind, name, folder):
    return {"str": name, "pathlib": pathlib.Path(name), "missing": name + ".missing",
            "dir": folder}[kind]


def _template(draw):
    """(model in eval mode, an input, its prediction), float32 or float64."""
    dtype = np.dtype(draw(st.sampled_from(FLOATS)))
    seed = draw(st.integers(0, 2**31))
    model = fastcnn.Sequential(*draw(st.sampled_from(TEMPLATES))(seed, dtype))
    rng = np.random.default_rng(seed)
    for layer in model:
        for v in layer.buffers.values():
            v[...] = rng.uniform(0.5, 1.5, v.shape)
    x = rng.uniform(-1, 1, (2, 1, 6, 6)).astype(dtype)
    with serving("cpu"):
        return model.eval(), x, host(model.forward(x))


def _mutated(draw, raw, rng):
    """raw made bad in one way (or left as it is): (bytes, what, valid?)."""
    what = draw(st.sampled_from(["valid", "valid", "truncate", "truncate", "flip", "flip",
                                 "junk", "empty", "random", "swap"]))
    if what == "truncate":
        return raw[:draw(st.integers(0, max(len(raw) - 1, 0)))], what, False
    if what == "flip":
        bad = bytearray(raw)
        for at in rng.integers(0, len(bad), draw(st.integers(1, 8))):
            bad[at] ^= int(rng.integers(1, 256))
        return bytes(bad), what, False
    if what == "swap":          # a block of bytes moved: fields out of place
        a, b = sorted(rng.integers(0, len(raw), 2))
        return raw[:a] + raw[b:] + raw[a:b], what, a == b
    junk = rng.integers(0, 256, draw(st.integers(1, 2000)), dtype=np.uint8).tobytes()
    return {"valid": raw, "junk": raw + junk, "empty": b"", "random": junk}[what], what, \
        what == "valid"


class LoaderCase:
    """A file of bytes content at a path, loaded and then run on x."""

    def __init__(self, target, content, path, what, want, x):
        self.target, self.content, self.path, self.what = target, content, path, what
        self.want, self.x = want, x

    def describe(self):
        return f"{self.call}({self.path} path to {len(self.content)} bytes: {self.what})"

    def allowed(self, error):
        if getattr(error, "fuzz_phase", "") != "load":
            return isinstance(error, (ValueError, TypeError))
        return isinstance(error, (self.error, FileNotFoundError, IsADirectoryError))

    def run(self, backend, folder=None):
        name = os.path.join(folder, self.filename)
        with open(name, "wb") as f:
            f.write(self.content)
        with serving(backend):
            try:
                loaded = self.load(_path(self.path, name, folder))
            except Exception as e:   # noqa: B902 - marked, for allowed()
                e.fuzz_phase = "load"
                raise
            model = self.model(loaded)
            # a bad file that loads may hold any numbers: what the backends make of them
            # is the functional groups' business, so only a valid file's model runs
            if self.want is None:
                return model.state_dict()
            return host(model.eval().forward(self.x))

    def checks(self, runs):
        return predicts_as_saved(self, runs)


class OnnxCase(LoaderCase):
    group, call, filename = "onnx_load", "fastcnn.onnx.load", "model.onnx"

    @property
    def error(self):
        return fastcnn.onnx.OnnxImportError

    def load(self, path):
        return fastcnn.onnx.load(path)

    def model(self, loaded):
        return loaded


class SafetensorsCase(LoaderCase):
    group, call, filename, error = "safetensors_load", "load_safetensors", "w.safetensors", \
        ModelFileError

    def __init__(self, template, *args):
        super().__init__(*args)
        self.template = template

    def load(self, path):
        return fastcnn.load_safetensors(path)

    def model(self, arrays):
        """The template's architecture with the file's weights (load_state_dict refuses
        other keys and shapes with a ValueError)."""
        model = fastcnn.Sequential(*TEMPLATES[self.template[0]](0, self.template[1]))
        model.load_state_dict(arrays)
        return model


def onnx_case(draw, target):
    from fastcnn.onnx.exporting import to_proto
    model, x, want = _template(draw)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    raw = to_proto(model, (1, 6, 6), draw(st.sampled_from([13, 17, 18]))).SerializeToString()
    content, what, valid = _mutated(draw, raw, rng)
    path = draw(st.sampled_from(PATHS))
    return OnnxCase("load", content, path, what, want if valid and path in ("str", "pathlib")
                    else None, x)


def safetensors_case(draw, target):
    import safetensors.numpy
    index = draw(st.integers(0, len(TEMPLATES) - 1))
    dtype = np.dtype(draw(st.sampled_from(FLOATS)))
    seed = draw(st.integers(0, 2**31))
    model = fastcnn.Sequential(*TEMPLATES[index](seed, dtype))
    x = np.random.default_rng(seed).uniform(-1, 1, (2, 1, 6, 6)).astype(dtype)
    with serving("cpu"):
        want = host(model.eval().forward(x))
    raw = safetensors.numpy.save(model.state_dict())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    content, what, valid = _mutated(draw, raw, rng)
    path = draw(st.sampled_from(PATHS))
    return SafetensorsCase((index, dtype), "load_safetensors", content, path, what,
                           want if valid and path in ("str", "pathlib") else None, x)


def cases():
    """The groups these cases add, where their packages are installed."""
    import importlib.util
    found = {"onnx_load": ("onnx", onnx_case),
             "safetensors_load": ("safetensors", safetensors_case)}
    return {group: case for group, (package, case) in found.items()
            if importlib.util.find_spec(package) is not None}
