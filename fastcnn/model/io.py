"""Model files: a .npz archive (a zip of .npy members) holding the architecture, as JSON
in a string, and every layer's parameters and buffers, named "i/params/weight",
"i/buffers/running_mean", ... by the layer's position in model.layers. No pickle is
written or read.

Reading trusts nothing in the file. Before a byte of any array is read, every member
is checked: stored or deflated, not encrypted, its .npy header (read here, with NumPy's
header readers) declaring a plain dtype and a shape whose bytes the member really
holds; and every array against the parameter or buffer that the model built from the
architecture has in its place (shape, floating point). So a corrupted, truncated or
hostile file costs no more memory than the data it holds, and ends in a ModelFileError
naming the file and what is wrong (a missing file: FileNotFoundError).
"""

import contextlib
import json
import math
import os
import secrets
import zipfile
from collections import namedtuple

import numpy as np
from numpy.lib import format as npy

from .. import backends
from ..nn.layers import LAYERS

FORMAT_VERSION = 1   # the layout above; files of versions 1 .. FORMAT_VERSION are read
FORMATS = {}         # an architecture's "format" -> the Model subclass it describes

_ENCRYPTED = 0x1          # the zip flag bit of an encrypted member
_DEFLATE_RATIO = 1032     # deflate never makes data more than about 1032 times smaller
_CHUNK = 1 << 20


class ModelFileError(ValueError):
    """A model file that cannot be read: truncated, corrupted, or not matching the model."""


# ---------------------------------------------------------------- writing


def save(model, path):
    """Parameters, running statistics and architecture to a .npz file at path, written
    to a temporary file first and renamed, so a crash never leaves half a file. The file
    gets the permissions any newly written file gets (0o666 less the umask)."""
    arrays = {"architecture": np.array(json.dumps(model.architecture()))}
    for key, layer, kind, name in _entries(model):
        arrays[key] = backends.to_host(getattr(layer, kind)[name])
    path = os.fspath(path)
    tmp, fd = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _create_beside(path):
    """(name, descriptor) of a new temporary file in path's folder, open for writing.
    Created with mode 0o666, which the system reduces by the umask as for any new file
    (mkstemp's 0o600 would stay the saved file's mode)."""
    folder = os.path.dirname(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".tmp-{secrets.token_hex(8)}.npz")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue


def _entries(model):
    """(key in the file, layer, "params" or "buffers", name) of every array model saves."""
    for i, layer in enumerate(model.layers):
        for kind in ("params", "buffers"):
            for name in getattr(layer, kind):
                yield f"{i}/{kind}/{name}", layer, kind, name


# ---------------------------------------------------------------- reading


def load(path, kind=None):
    """The model a file written by save holds, rebuilt (no pickle involved); with kind
    (a Model class), refused unless it is one."""
    with _ModelFile(os.fspath(path)) as f:
        if kind is not None and not issubclass(f.kind, kind):
            raise f.error(f"the file holds a {f.kind.__name__}, not a {kind.__name__}")
        layers = [f.layer(i, spec) for i, spec in enumerate(f.arch["layers"])]
        try:
            model = f.kind.from_architecture(f.arch, layers)
        except Exception as e:
            raise f.error(_described(e)) from None
        f.set_arrays(model)
    return model


def load_weights(model, path):
    """Parameters and running statistics from a file written by save, into this model
    (whose architecture must match the file's)."""
    with _ModelFile(os.fspath(path)) as f:
        theirs = f.arch["layers"]
        if len(theirs) != len(model.layers):
            raise f.error(f"the file has {len(theirs)} layers, the model {len(model.layers)}")
        for layer, spec in zip(model.layers, theirs):
            if spec["type"] != type(layer).__name__:
                raise f.error(f"{layer.name} is a {type(layer).__name__} in the model but a "
                              f"{spec['type']} in the file")
        f.set_arrays(model)
    return model


_Member = namedtuple("_Member", "info shape dtype fortran offset nbytes")


class _ModelFile:
    """An open model file whose members and architecture passed the checks above."""

    def __init__(self, path):
        self.path = path
        self._file = open(path, "rb")        # a missing file: FileNotFoundError, as open's
        self._zip = None
        try:
            with self._reading("not a readable model file (truncated or corrupted?)"):
                self._zip = zipfile.ZipFile(self._file)
            self.members = self._members(os.fstat(self._file.fileno()).st_size)
            self.arch, self.kind = self._architecture()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._zip is not None:
            self._zip.close()
        self._file.close()

    def error(self, message):
        return ModelFileError(f"{self.path}: {message}")

    @contextlib.contextmanager
    def _reading(self, what):
        """Whatever zipfile, zlib or NumPy's header parser raise on bad bytes (BadZipFile,
        OSError, EOFError, zlib.error, ValueError, ...) as a ModelFileError."""
        try:
            yield
        except ModelFileError:
            raise
        except Exception as e:
            raise self.error(f"{what}: {type(e).__name__}: {e}") from None

    # ---- members

    def _members(self, file_size):
        members = {}
        for info in self._zip.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                raise self.error(f"member {name!r} is not an .npy array")
            if name[:-4] in members:
                raise self.error(f"member {name!r} appears twice")
            if info.flag_bits & _ENCRYPTED:
                raise self.error(f"member {name!r} is encrypted")
            stored = info.compress_type == zipfile.ZIP_STORED
            if not stored and info.compress_type != zipfile.ZIP_DEFLATED:
                raise self.error(f"member {name!r} uses compression method "
                                 f"{info.compress_type}; model files are stored or deflated")
            if info.compress_size > file_size:
                raise self.error(f"member {name!r} claims {info.compress_size:,} bytes, more "
                                 f"than the whole file's {file_size:,} (truncated?)")
            if (info.file_size != info.compress_size if stored
                    else info.file_size > _DEFLATE_RATIO * info.compress_size):
                raise self.error(f"member {name!r} claims {info.file_size:,} bytes from "
                                 f"{info.compress_size:,} bytes of data")
            members[name[:-4]] = self._header(info)
        return members

    def _header(self, info):
        """A member's shape, dtype and layout, from its .npy header alone, checked against
        the member's size."""
        name = info.filename
        with self._reading(f"member {name!r} has no readable .npy header (truncated or "
                           f"corrupted?)"):
            with self._zip.open(info) as fp:
                version = npy.read_magic(fp)
                if version not in ((1, 0), (2, 0)):
                    raise self.error(f"member {name!r} is an .npy file of version {version}, "
                                     f"which model files never are")
                read = npy.read_array_header_1_0 if version == (1, 0) else \
                    npy.read_array_header_2_0
                shape, fortran, dtype = read(fp)
                offset = fp.tell()
        if dtype.hasobject:
            raise self.error(f"member {name!r} holds Python objects, which only a pickle "
                             f"could rebuild; model files hold no pickles")
        nbytes = math.prod(shape) * dtype.itemsize
        if min(shape, default=0) < 0 or offset + nbytes != info.file_size:
            raise self.error(f"member {name!r} declares {dtype} of shape {shape} "
                             f"({nbytes:,} bytes) but holds {info.file_size - offset:,} bytes "
                             f"of data")
        return _Member(info, shape, dtype, fortran, offset, nbytes)

    def read(self, key):
        """The array in member key (checked already), read in chunks into its own memory."""
        m = self.members[key]
        a = np.empty(m.shape[::-1] if m.fortran else m.shape, m.dtype)
        with self._reading(f"member {m.info.filename!r} cannot be read (truncated or "
                           f"corrupted?)"):
            with self._zip.open(m.info) as fp:
                fp.read(m.offset)
                if m.nbytes:
                    into, done = memoryview(a.reshape(-1).view(np.uint8)), 0
                    while done < m.nbytes:
                        chunk = fp.read(min(_CHUNK, m.nbytes - done))
                        if not chunk:
                            raise EOFError(f"{m.nbytes - done:,} bytes short")
                        into[done:done + len(chunk)] = chunk
                        done += len(chunk)
                fp.read(1)       # at the end: zipfile checks the member's CRC-32
        return a.T if m.fortran else a

    # ---- the architecture

    def _architecture(self):
        """(architecture dict, the Model class it describes), its layer list checked."""
        member = self.members.get("architecture")
        if member is None:
            raise self.error("not a fastcnn model file (no architecture entry)")
        if member.dtype.kind != "U" or member.shape != ():
            raise self.error(f"the architecture entry is {member.dtype} of shape "
                             f"{member.shape}, not a string")
        try:
            arch = json.loads(str(self.read("architecture")[()]))
        except (ValueError, RecursionError) as e:
            raise self.error(f"corrupted architecture entry: {e}") from None
        if not isinstance(arch, dict):
            raise self.error("not a fastcnn model file (the architecture is no JSON object)")
        name = arch.get("format")
        kind = FORMATS.get(name) if isinstance(name, str) else None
        if kind is None:
            raise self.error(f"not a fastcnn model file (format {name!r})")
        version = arch.get("version")
        if type(version) is not int or version < 1:
            raise self.error(f"format version {version!r} is not a version number")
        if version > FORMAT_VERSION:
            raise self.error(f"written by a newer fastcnn (format version {version} > "
                             f"{FORMAT_VERSION})")
        layers = arch.get("layers")
        if not isinstance(layers, list):
            raise self.error("the architecture has no list of layers")
        for i, spec in enumerate(layers):
            if not (isinstance(spec, dict) and isinstance(spec.get("type"), str)
                    and isinstance(spec.get("config", {}), dict)):
                raise self.error(f"layer {i} is {_short(spec)}, not "
                                 f"{{\"type\": name, \"config\": {{...}}}}")
        return arch, kind

    def layer(self, i, spec):
        """Layer i built from its spec, in the dtype of its arrays in the file."""
        kind = LAYERS.get(spec["type"])
        if kind is None:
            raise self.error(f"layer {i} has unknown type {_short(spec['type'])}")
        config = {k: tuple(v) if isinstance(v, list) else v
                  for k, v in spec.get("config", {}).items()}
        dtype = next((m.dtype.newbyteorder("=") for key, m in self.members.items()
                      if key.startswith(f"{i}/") and m.dtype.kind == "f"), None)
        try:
            return kind(**config, **({"dtype": dtype} if dtype is not None else {}))
        except Exception as e:    # whatever a constructor raises on values it cannot use
            raise self.error(f"layer {i} {kind.__name__}{_short(config)}: "
                             f"{_described(e)}") from None

    # ---- the arrays

    def set_arrays(self, model):
        """Every parameter and buffer of model from the file, each checked before any is
        read."""
        expected = {"architecture"}
        for key, layer, kind, name in _entries(model):
            mine, member = getattr(layer, kind)[name], self.members.get(key)
            if member is None:
                raise self.error(f"{layer.name}: the file has no {name}")
            if member.shape != tuple(mine.shape):
                raise self.error(f"{layer.name}: {name} has shape {member.shape} in the file "
                                 f"but {tuple(mine.shape)} in the model")
            if member.dtype.kind != "f":
                raise self.error(f"{layer.name}: {name} is {member.dtype}, not floating point")
            expected.add(key)
        extra = sorted(set(self.members) - expected)
        if extra:
            raise self.error(f"arrays the model has no place for: {extra[:5]}")
        move = backends.mover(model.device)
        for key, layer, kind, name in _entries(model):
            arrays = getattr(layer, kind)
            arrays[name] = move(np.ascontiguousarray(self.read(key), arrays[name].dtype))
        for layer in model.layers:
            layer.forget()


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _described(error):
    """An exception as a message: its text, after its type unless a ValueError or
    TypeError (which say what they are about)."""
    if isinstance(error, (ValueError, TypeError)):
        return str(error)
    return f"{type(error).__name__}: {error}"
