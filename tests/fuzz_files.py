"""Fuzz cases for the DataLoader, the IDX reader and the model loader.

Their results do not depend on a backend, so besides "no crash, no hang, only the
documented exceptions" each case checks, when its input is valid, the result against
what it must be: the batches against the dataset, the array read against the one
written, the loaded model's predictions against the saved model's.
"""

import gzip
import importlib
import io
import json
import os
import pathlib
import struct
import tempfile
import zipfile

import numpy as np
from hypothesis import strategies as st

import fastcnn
from fastcnn import nn
from fastcnn.data import IDX_TYPES, ArrayDataset, DataLoader, Subset, read_idx
from fuzz_targets import host, serving
from fuzz_values import FLOATS, bad_bool, bad_int, build, short

ModelFileError = getattr(importlib.import_module("fastcnn.model"), "ModelFileError", ValueError)


# ---------------------------------------------------------------- DataLoader


class Dataset:
    """A user's dataset: __len__ and __getitem__ of one example."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _dataset(kind, x, y):
    return {"tuple": lambda: (x, y), "list": lambda: [x, y], "x": lambda: x,
            "ArrayDataset": lambda: ArrayDataset(x, y), "Dataset": lambda: Dataset(x, y),
            "Subset": lambda: Subset(ArrayDataset(x, y), np.arange(len(x))[::-1]),
            "dict": lambda: {"x": x, "y": y}, "None": lambda: None, "int": lambda: 5,
            "str": lambda: "abc", "lengths": lambda: (x, y[:-1]), "empty": lambda: (),
            "generator": lambda: (v for v in x), "scalar": lambda: np.array(1.0)}[kind]()


class LoaderCase:
    group, backends = "dataloader", ("cpu",)

    def __init__(self, kind, n, shape, kwargs):
        self.target, self.kind, self.n, self.shape, self.kwargs = "DataLoader", kind, n, \
            shape, kwargs

    def describe(self):
        kwargs = ", ".join(f"{k}={short(v)}" for k, v in self.kwargs.items())
        return f"DataLoader({self.kind} of {self.n} x {self.shape}, {kwargs}): 2 epochs"

    def arrays(self):
        """x[i] is full of i and y[i] = i, so a batch shows which examples it holds."""
        x = np.broadcast_to(np.arange(self.n, dtype=np.float32).reshape(
            (-1,) + (1,) * len(self.shape)), (self.n,) + self.shape).copy()
        return x, np.arange(self.n)

    def run(self, backend, folder=None):
        loader = DataLoader(_dataset(self.kind, *self.arrays()), **build(self.kwargs))
        return len(loader), [[tuple(host(a) for a in b) for b in loader] for _ in range(2)]

    def checks(self, runs):
        run = runs["cpu"]
        if run[0] != "ok" or self.kind not in ("tuple", "list", "ArrayDataset", "Dataset",
                                               "Subset"):
            return []
        count, epochs = run[1]
        batch, sampler = self.kwargs.get("batch_size", 32), self.kwargs.get("sampler")
        order = list(range(self.n))[::-1] if self.kind == "Subset" else list(range(self.n))
        if sampler is not None:
            if not (isinstance(sampler, list) and all(
                    isinstance(i, int) and 0 <= i < self.n for i in sampler)):
                return []
            order = [order[i] for i in sampler]
        problems = []
        for e, batches in enumerate(epochs):
            if len(batches) != count:
                problems.append(f"epoch {e}: {len(batches)} batches but len(loader) = {count}")
            seen = [int(v) for b in batches for v in b[1]]
            for b in batches:
                if b[0].shape[1:] != self.shape or (not self.kwargs.get("transform") and not (
                        b[0].reshape(len(b[0]), -1) == b[1][:, None]).all()):
                    problems.append(f"epoch {e}: a batch's x and y are not the same examples")
            whole = len(order) - (len(order) % batch if self.kwargs.get("drop_last") else 0)
            sizes = [len(b[1]) for b in batches]
            if sizes and (max(sizes) > batch or sum(sizes) != whole):
                problems.append(f"epoch {e}: batch sizes {sizes} for {len(order)} examples "
                                f"in batches of {batch}")
            shuffled = self.kwargs.get("shuffle") and sampler is None
            if not shuffled and seen != order[:whole]:
                problems.append(f"epoch {e}: examples {seen}, expected {order[:whole]}")
            if shuffled and len(set(seen)) != len(seen):
                problems.append(f"epoch {e}: an example twice in one epoch: {seen}")
        return problems[:1]


def loader_case(draw, target):
    n = draw(st.integers(0, 9))
    shape = draw(st.sampled_from([(2,), (1, 3, 3)]))
    kwargs = {"batch_size": draw(st.integers(1, 5))}
    for key, values in (("shuffle", st.booleans()), ("drop_last", st.booleans()),
                        ("seed", st.integers(0, 99))):
        if draw(st.booleans()):
            kwargs[key] = draw(values)
    if draw(st.integers(0, 3)) == 0 and not kwargs.get("shuffle"):
        kwargs["sampler"] = draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=12)) \
            if n else []
    kind = draw(st.sampled_from(["tuple", "tuple", "list", "ArrayDataset", "Dataset", "Subset",
                                 "x"]))
    what = draw(st.sampled_from(["none", "dataset", "batch_size", "flags", "seed",
                                 "transform", "sampler", "sampler"]))
    if what == "dataset":
        kind = draw(st.sampled_from(["dict", "None", "int", "str", "lengths", "empty",
                                     "generator", "scalar"]))
    elif what == "batch_size":
        kwargs["batch_size"] = draw(st.one_of(bad_int(), st.sampled_from([10**10, 2**63])))
    elif what == "flags":
        kwargs[draw(st.sampled_from(["shuffle", "drop_last"]))] = draw(bad_bool())
    elif what == "seed":
        kwargs["seed"] = draw(st.sampled_from([-1, "x", 1.5, [1, 2], 2**70, None, object()]))
    elif what == "transform":
        kwargs["transform"] = draw(st.sampled_from([5, "x", fastcnn.data.Normalize(0.5, 2.0),
                                                    fastcnn.data.RandomShift(1)]))
    elif what == "sampler":
        kwargs.pop("shuffle", None)
        kwargs["sampler"] = draw(st.sampled_from([
            [n], [n + 5], [-1], [0.5], [None], "abc", 5, [[0, 1]], [2**63], iter([0]),
            range(n + 1), np.arange(n)[::-1]]))
    return LoaderCase(kind, n, shape, kwargs)


# ---------------------------------------------------------------- the IDX reader

CODES = {v: k for k, v in IDX_TYPES.items()}


class IdxCase:
    group, backends = "read_idx", ("cpu",)

    def __init__(self, content, path, magic, expect, what):
        self.target, self.content, self.path, self.magic = "read_idx", content, path, magic
        self.expect, self.what = expect, what

    def describe(self):
        magic = "" if self.magic is None else f", magic={short(self.magic)}"
        return f"read_idx({self.path} path to {len(self.content)} bytes: {self.what}{magic})"

    def run(self, backend, folder=None):
        name = os.path.join(folder, "file.idx")
        with open(name, "wb") as f:
            f.write(self.content)
        path = {"str": name, "pathlib": pathlib.Path(name), "bytes": os.fsencode(name),
                "missing": name + ".missing", "dir": folder, "None": None, "int": True,
                "-1": -1, "nul": name + "\0x"}[self.path]
        return read_idx(path, self.magic) if self.magic is not None else read_idx(path)

    def checks(self, runs):
        run = runs["cpu"]
        if self.expect is None or run[0] != "ok":
            return []
        got = run[1]
        if got.dtype != self.expect.dtype.newbyteorder("=") or not np.array_equal(
                got, self.expect):
            return [f"read {got.dtype}{list(got.shape)}, wrote {self.expect.dtype}"
                    f"{list(self.expect.shape)} (or other values)"]
        return []


def idx_case(draw, target):
    dtype = draw(st.sampled_from(sorted(CODES, key=str)))
    dims = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = (rng.uniform(-100, 100, dims)).astype(dtype)
    header = bytes([0, 0, CODES[dtype], len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    raw, expect = header + values.tobytes(), values
    what = draw(st.sampled_from(["valid", "truncated", "truncated", "magic", "type", "ndim",
                                 "huge", "huge", "trailing", "empty", "gzip-corrupt",
                                 "gzip-magic"]))
    if what == "truncated":
        raw = raw[:draw(st.integers(0, max(len(raw) - 1, 0)))]
    elif what == "magic":
        raw = bytes([draw(st.integers(1, 255))]) + raw[1:]
    elif what == "type":
        raw = raw[:2] + bytes([draw(st.sampled_from([0, 1, 0x0A, 0x0F, 255]))]) + raw[3:]
    elif what == "ndim":
        raw = raw[:3] + bytes([draw(st.sampled_from([0, 4, 200, 255]))]) + raw[4:]
    elif what == "huge":
        huge = draw(st.sampled_from([2**32 - 1, 10**9, 2**31]))
        raw = raw[:4] + struct.pack(">I", huge) + raw[8:]
    elif what == "trailing":
        raw += b"\0" * draw(st.integers(1, 9))
    elif what == "empty":
        raw = b""
    expect = expect if what == "valid" else None
    squeeze = draw(st.booleans())
    if squeeze or what.startswith("gzip"):
        raw = gzip.compress(raw, mtime=0)
        if what == "gzip-corrupt":
            at = draw(st.integers(0, len(raw) - 1))
            raw = raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:]
            expect = None
        elif what == "gzip-magic":
            raw, expect = raw[:draw(st.integers(2, len(raw) - 1))], None
    path = draw(st.sampled_from(["str"] * 6 + ["pathlib", "bytes", "missing", "dir", "None",
                                               "int", "-1", "nul"]))
    magic = None
    if draw(st.integers(0, 3)) == 0:
        magic = draw(st.sampled_from([int.from_bytes(header[:4], "big"), 0x803, -1, 2**40,
                                      "0x803", 2051.0, None]))
    if path not in ("str", "pathlib", "bytes") or magic not in (
            None, int.from_bytes(header[:4], "big")):
        expect = None
    return IdxCase(raw, path, magic, expect, what + (" (gzip)" if squeeze else ""))


# ---------------------------------------------------------------- the model loader

TEMPLATES = [   # input (2, 1, 6, 6)
    lambda s, d: [nn.Conv2d(1, 2, 3, padding=1, dtype=d, rng=s), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Flatten(), nn.Linear(18, 3, dtype=d, rng=s + 1)],
    lambda s, d: [nn.Flatten(), nn.Linear(36, 4, dtype=d, rng=s), nn.BatchNorm1d(4, dtype=d),
                  nn.Tanh(), nn.Dropout(0.5, rng=s), nn.Linear(4, 2, dtype=d, rng=s + 1)],
    lambda s, d: [nn.Conv2d(1, 2, 3, dtype=d, rng=s), nn.BatchNorm2d(2, dtype=d),
                  nn.LeakyReLU(0.1), nn.AvgPool2d(2), nn.Flatten(),
                  nn.Linear(8, 4, dtype=d, rng=s + 1), nn.Maxout(2)],
    lambda s, d: [nn.Upsample(scale_factor=2), nn.Conv2d(1, 1, 3, stride=2, dtype=d, rng=s),
                  nn.Sigmoid(),
                  nn.Flatten(), nn.Linear(25, 2, dtype=d, rng=s + 1), nn.ELU(), nn.Softmax()],
]
ARCH_VARIANTS = [
    [], 5, "x", None, {}, {"format": "other", "version": 1, "layers": []},
    {"version": "1"}, {"version": 2}, {"version": None}, {"version": [1]}, {"layers": 5},
    {"layers": [5]}, {"layers": ["abc"]}, {"layers": [{"type": "Nope"}]},
    {"layers": [{"type": None}]}, {"layers": [{"type": ["Conv2d"]}]},
    {"layers": [{"type": "Conv2d", "config": [1]}]}, {"layers": [{"type": "Conv2d"}]},
    {"layers": [{"type": "Linear", "config": {"in_features": 2, "bogus": 1}}]}, "config"]
BAD_CONFIG = [-1, 0, "x", None, 10**10, 2**63, [3, 3, 3], 1.5, True, {"a": 1}, [-1, 2]]


def _member_bytes(arrays, compressed=False):
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def _patch_zip(raw, local_offset, central_offset, value):
    """Set a field of the first member in its local and central headers."""
    first = raw.find(b"PK\x01\x02")
    for at, field in ((0, local_offset), (first, central_offset)):
        raw = raw[:at + field] + struct.pack("<H", value) + raw[at + field + 2:]
    return raw


def _model_file(draw, raw, arrays, arch):
    """The saved file made bad in one way (or a valid variant): (bytes, what, valid?)."""
    what = draw(st.sampled_from([
        "valid", "truncate", "truncate", "flip", "junk", "empty", "random", "npy", "arch",
        "arch", "arch", "config", "config", "arch-array", "drop", "extra", "reshape", "dtype",
        "nan", "header", "header", "encrypted", "method", "compressed", "big-endian"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    keys = sorted(k for k in arrays if k != "architecture")
    arrays = dict(arrays)
    key = draw(st.sampled_from(keys)) if keys else "architecture"
    if what == "truncate":
        return raw[:draw(st.integers(0, len(raw) - 1))], what, False
    if what == "flip":
        raw = bytearray(raw)
        for at in rng.integers(0, len(raw), draw(st.integers(1, 8))):
            raw[at] ^= int(rng.integers(1, 256))
        return bytes(raw), what, False
    if what in ("junk", "empty", "random"):
        junk = rng.integers(0, 256, draw(st.integers(1, 2000)), dtype=np.uint8).tobytes()
        return {"junk": raw + junk, "empty": b"", "random": junk}[what], what, False
    if what == "npy":
        buf = io.BytesIO()
        np.save(buf, np.ones(3))
        return buf.getvalue(), what, False
    if what == "arch":
        variant = draw(st.sampled_from(ARCH_VARIANTS))
        if isinstance(variant, dict) and variant.keys() <= {"version", "layers"}:
            variant = dict(arch, **variant)
        text = "[" * 100000 + "]" * 100000 if variant == "config" else json.dumps(variant)
        arrays["architecture"] = np.array(text)
        what = f"architecture {text[:60]}"
    elif what == "config":
        spec = dict(arch, layers=[dict(layer, config=dict(layer["config"]))
                                  for layer in arch["layers"]])
        layer = spec["layers"][draw(st.integers(0, len(spec["layers"]) - 1))]
        names = sorted(layer["config"]) or ["bogus"]
        name = draw(st.sampled_from(names))
        layer["config"][name] = draw(st.sampled_from(BAD_CONFIG))
        arrays["architecture"] = np.array(json.dumps(spec))
        what = f"{layer['type']} config {name}={layer['config'][name]!r}"
    elif what == "arch-array":
        arrays["architecture"] = draw(st.sampled_from([
            np.arange(3), np.ones(2), np.array([json.dumps(arch)] * 2), np.array(b"{}"),
            np.array([{"a": 1}], dtype=object), np.array(7)]))
    elif what == "drop":
        arrays.pop(key)
    elif what == "extra":
        arrays["99/params/weight"] = np.ones(2, np.float32)
    elif what == "reshape":
        arrays[key] = np.ones(arrays[key].shape + (2,), arrays[key].dtype)
    elif what == "dtype":
        arrays[key] = arrays[key].astype(draw(st.sampled_from(
            ["int32", "float16", "complex64", "object", "bool", "U3"])))
    elif what == "nan":
        arrays[key] = np.full_like(arrays[key], np.nan)
    elif what == "big-endian":
        arrays = {k: v.astype(v.dtype.newbyteorder(">")) if v.dtype.kind == "f" else v
                  for k, v in arrays.items()}
    if what in ("header", "encrypted", "method"):
        raw = _member_bytes(arrays)
        if what == "encrypted":
            return _patch_zip(raw, 6, 8, 1), what, False
        if what == "method":
            return _patch_zip(raw, 8, 10, 99), what, False
        member = f"{key}.npy"
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            members = {n: z.read(n) for n in z.namelist()}
        old = str(tuple(arrays[key].shape)).encode()
        new = draw(st.sampled_from([b"(1000000000000,)", b"(4611686018427387904,)",
                                    b"(-1,)", b"(2, 'x')", b"(" + b"9" * 30 + b",)"]))
        members[member] = members[member].replace(b"'shape': " + old, b"'shape': " + new, 1)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for n, data in members.items():
                z.writestr(n, data)
        return buf.getvalue(), f"{member} header shape {new.decode()[:30]}", False
    valid = what in ("valid", "compressed", "big-endian")
    return _member_bytes(arrays, what == "compressed"), what, valid


class ModelCase:
    group = "model_load"

    def __init__(self, content, path, what, want, x):
        self.target, self.content, self.path, self.what = "load", content, path, what
        self.want, self.x = want, x

    def describe(self):
        return f"fastcnn.model.load({self.path} path to {len(self.content)} bytes: {self.what})"

    def allowed(self, error):
        """The loader may raise only ModelFileError for a bad file (FileNotFoundError or
        IsADirectoryError for a path that is no file, as open() does; TypeError or
        ValueError for a path of the wrong type); the model it
        returns may refuse the input like any model."""
        if getattr(error, "fuzz_phase", "") != "load":
            return isinstance(error, (ValueError, TypeError))
        if self.path in ("None", "int", "nul"):
            return isinstance(error, (TypeError, ValueError))
        return isinstance(error, (ModelFileError, FileNotFoundError, IsADirectoryError))

    def run(self, backend, folder=None):
        name = os.path.join(folder, "model.npz")
        with open(name, "wb") as f:
            f.write(self.content)
        path = {"str": name, "pathlib": pathlib.Path(name), "missing": name + ".missing",
                "dir": folder, "None": None, "int": 3, "nul": name + "\0x"}[self.path]
        with serving(backend):
            try:
                model = fastcnn.load(path)
            except Exception as e:   # noqa: B902 - marked, for allowed()
                e.fuzz_phase = "load"
                raise
            return host(model.eval().forward(self.x))

    def checks(self, runs):
        return predicts_as_saved(self, runs)


def predicts_as_saved(case, runs):
    """A loaded valid file's model (case.want: what it predicted before it was written)
    predicts the same on the cpu; nothing to check for a bad file."""
    run = runs.get("cpu")
    if case.want is None or run is None or run[0] != "ok":
        return []
    got = run[1]
    if got.shape != case.want.shape or not np.allclose(
            got, case.want, rtol=1e-5, atol=1e-6, equal_nan=True):
        return [f"the loaded model predicts other values than the saved one ({case.what})"]
    return []


def model_case(draw, target):
    dtype = np.dtype(draw(st.sampled_from(FLOATS)))
    seed = draw(st.integers(0, 2**31))
    model = fastcnn.Sequential(*draw(st.sampled_from(TEMPLATES))(seed, dtype))
    rng = np.random.default_rng(seed)
    for layer in model:   # running statistics that matter when loaded
        for k, v in layer.buffers.items():
            v[...] = rng.uniform(0.5, 1.5, v.shape)
    x = rng.uniform(-1, 1, (2, 1, 6, 6)).astype(dtype)
    with serving("cpu"):
        want = host(model.eval().forward(x))
    with tempfile.TemporaryDirectory() as folder:   # the file save writes, and its members
        model.save(os.path.join(folder, "model.npz"))
        with open(os.path.join(folder, "model.npz"), "rb") as f:
            raw = f.read()
    with np.load(io.BytesIO(raw)) as f:
        arrays = {k: f[k] for k in f.files}
    content, what, valid = _model_file(draw, raw, arrays, model.architecture())
    path = draw(st.sampled_from(["str"] * 8 + ["pathlib", "missing", "dir", "None", "int",
                                               "nul"]))
    return ModelCase(content, path, what, want if valid and path in ("str", "pathlib")
                     else None, x)
