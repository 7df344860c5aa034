"""Model files that are malformed, truncated or hostile: each load ends in a ModelFileError
naming the file and what is wrong, before more memory than the file's own data is
taken; and saved files get the permissions of any newly written file."""

import io
import json
import os
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from fastcnn import nn
from fastcnn.model import ModelFileError, Sequential, load

ARCH = {"format": "fastcnn.Sequential", "version": 1,
        "layers": [{"type": "Linear", "config": {"in_features": 2, "out_features": 3}}]}


def npy(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)
    return buf.getvalue()


def header(shape, dtype=np.float32, data=b""):
    """An .npy header declaring shape and dtype, followed by data (whatever it is)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
        "shape": shape})
    return buf.getvalue() + data


def members(arch=ARCH, **arrays):
    """The members of a Linear(2, 3) model file, with arch and arrays replaced."""
    found = {"architecture.npy": npy(np.array(json.dumps(arch))),
             "0/params/weight.npy": npy(np.ones((3, 2), np.float32)),
             "0/params/bias.npy": npy(np.zeros(3, np.float32))}
    found.update({f"{k.replace('__', '/')}.npy": v for k, v in arrays.items()})
    return found


def write(path, content, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in content.items():
            z.writestr(name, data)
    return path


def patch_member(path, name, method=None, file_size=None, flags=None):
    """Rewrite a member's compression method, uncompressed size or flags in both of the
    zip's headers for it (zipfile would not write them)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        local = z.getinfo(name).header_offset
    central = data.index(b"PK\x01\x02")
    while data[central + 46:central + 46 + len(name)] != name.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    if method is not None:
        struct.pack_into("<H", data, local + 8, method)
        struct.pack_into("<H", data, central + 10, method)
    if flags is not None:
        struct.pack_into("<H", data, local + 6, flags)
        struct.pack_into("<H", data, central + 8, flags)
    if file_size is not None:
        struct.pack_into("<I", data, local + 22, file_size)
        struct.pack_into("<I", data, central + 24, file_size)
    path.write_bytes(bytes(data))


def fails(path, *words):
    with pytest.raises(ModelFileError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    for word in words:
        assert word in message, message
    return message


def test_a_good_file_loads(tmp_path):
    model = load(write(tmp_path / "m.npz", members()))
    np.testing.assert_array_equal(model[0].params["weight"], np.ones((3, 2)))


@pytest.mark.parametrize("arch, words", [
    ([1, 2], ["not a fastcnn model file"]),
    ({**ARCH, "format": ["x"]}, ["not a fastcnn model file", "['x']"]),
    ({**ARCH, "version": "1"}, ["format version '1' is not a version number"]),
    ({**ARCH, "version": 0}, ["format version 0"]),
    ({**ARCH, "version": 2}, ["newer fastcnn"]),
    ({**ARCH, "layers": {"0": {}}}, ["no list of layers"]),
    ({**ARCH, "layers": [5]}, ["layer 0 is 5, not"]),
    ({**ARCH, "layers": [{"type": "Linear", "config": [2, 3]}]}, ["layer 0 is", "not"]),
    ({**ARCH, "layers": [{"type": 7}]}, ["layer 0 is"]),
    ({**ARCH, "layers": [{"type": "Quux"}]}, ["layer 0 has unknown type 'Quux'"]),
    ({**ARCH, "layers": [{"type": "Linear", "config": {"in_features": 10**30,
                                                       "out_features": 3}}]},
     ["layer 0 Linear"]),
    ({**ARCH, "layers": [{"type": "Linear", "config": {"in_features": 0,
                                                       "out_features": 3}}]},
     ["layer 0 Linear"]),                 # a ZeroDivisionError in the initialiser
    ({**ARCH, "layers": [{"type": "Linear", "config": {"in_features": "two",
                                                       "out_features": 3}}]},
     ["layer 0 Linear"]),
])
def test_a_bad_architecture(tmp_path, arch, words):
    fails(write(tmp_path / "m.npz", members(arch)), *words)


def test_an_architecture_entry_that_is_not_a_string(tmp_path):
    content = members()
    content["architecture.npy"] = npy(np.zeros(3))
    fails(write(tmp_path / "m.npz", content), "architecture entry is float64 of shape (3,)")
    content["architecture.npy"] = npy(np.array(["a", "b"]))
    fails(write(tmp_path / "m.npz", content), "not a string")


def test_an_encrypted_member(tmp_path):
    path = write(tmp_path / "m.npz", members())
    patch_member(path, "0/params/weight.npy", flags=0x1)     # what an encrypting tool sets
    fails(path, "'0/params/weight.npy' is encrypted")


def test_an_unknown_compression_method(tmp_path):
    path = write(tmp_path / "m.npz", members())
    patch_member(path, "0/params/weight.npy", method=99)
    fails(path, "'0/params/weight.npy' uses compression method 99")


def test_a_deflated_member_claiming_more_than_deflate_can_hold(tmp_path):
    path = write(tmp_path / "m.npz", members(), zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(path) as z:
        compressed = z.getinfo("0/params/bias.npy").compress_size
    patch_member(path, "0/params/bias.npy", file_size=2000 * compressed)
    fails(path, "'0/params/bias.npy' claims")


def test_a_header_declaring_a_huge_array_is_refused_before_reading(tmp_path):
    """10**12 elements would be 3.6 TiB; 10**8 (400 MB) would be allocated, then the
    read would fail: both are refused from the header and the member's size."""
    for shape in ((10**6, 10**6), (10**4, 10**4)):
        path = write(tmp_path / "m.npz", members(**{"0__params__weight": header(
            shape, data=b"\0" * 64)}))
        tracemalloc.start()
        try:
            fails(path, "'0/params/weight.npy' declares float32 of shape", "but holds 64 bytes")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 2**20, peak


def test_arrays_are_checked_against_the_model_before_any_is_read(tmp_path):
    """A 4 MB weight where the architecture wants (3, 2): refused from its header."""
    path = write(tmp_path / "m.npz", members(**{"0__params__weight": npy(
        np.ones((1000, 1000), np.float32))}))
    tracemalloc.start()
    try:
        fails(path, "weight has shape (1000, 1000) in the file but (3, 2) in the model")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, peak


@pytest.mark.parametrize("arrays, words", [
    ({"0__params__weight": header((3, 2), data=b"\0" * 8)}, ["declares", "holds 8 bytes"]),
    ({"0__params__weight": header((3, -2), data=b"")}, ["declares"]),
    ({"0__params__weight": npy(np.ones((3, 2), np.int32))}, ["weight is int32, not floating"]),
    ({"0__params__weight": b"not an npy file"}, ["no readable .npy header"]),
    ({"0__params__extra": npy(np.ones(2, np.float32))}, ["no place for", "0/params/extra"]),
])
def test_bad_members(tmp_path, arrays, words):
    fails(write(tmp_path / "m.npz", members(**arrays)), *words)


def test_odd_members(tmp_path):
    content = members()
    fails(write(tmp_path / "m.npz", {**content, "notes.txt": b"hi"}), "'notes.txt' is not")
    path = write(tmp_path / "m.npz", content)
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as z:
        z.writestr("0/params/bias.npy", content["0/params/bias.npy"])
    fails(path, "appears twice")


def test_pickles_are_refused(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(pickle.dumps({"architecture": ARCH}))
    fails(path, "not a readable model file")
    objects = np.array([{"a": 1}, None], dtype=object)
    fails(write(path, members(**{"0__params__weight": npy(objects)})), "Python objects",
          "pickle")


def test_every_truncation_is_a_model_file_error(tmp_path):
    model = Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    model.save(tmp_path / "good.npz")
    good = (tmp_path / "good.npz").read_bytes()
    bad = tmp_path / "bad.npz"
    for n in range(0, len(good), max(1, len(good) // 97)):
        bad.write_bytes(good[:n])
        fails(bad)


def test_a_file_written_by_format_version_1_loads(tmp_path):
    """As fastcnn 0.1's save wrote them: np.savez of the architecture and the arrays."""
    arch = {"format": "fastcnn.Sequential", "version": 1, "layers": [
        {"type": "Linear", "config": {"in_features": 2, "out_features": 3}},
        {"type": "ReLU", "config": {}},
        {"type": "BatchNorm1d", "config": {"num_features": 3, "momentum": 0.2}}]}
    rng = np.random.default_rng(0)
    arrays = {"0/params/weight": rng.normal(size=(3, 2)), "0/params/bias": np.zeros(3),
              "2/params/weight": np.ones(3), "2/params/bias": np.zeros(3),
              "2/buffers/running_mean": np.arange(3.0), "2/buffers/running_var": np.ones(3)}
    np.savez(tmp_path / "v1.npz", architecture=np.array(json.dumps(arch)), **arrays)
    model = load(tmp_path / "v1.npz")
    assert repr(model[2]) == "BatchNorm1d(3, momentum=0.2)"
    assert model[0].params["weight"].dtype == np.float64
    np.testing.assert_array_equal(model[0].params["weight"], arrays["0/params/weight"])
    np.testing.assert_array_equal(model[2].buffers["running_mean"], np.arange(3.0))
    model[0].params["weight"] += 1        # the loaded arrays are the model's own, writable


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_files_get_the_permissions_of_a_new_file(tmp_path, umask):
    previous = os.umask(umask)
    try:
        Sequential(nn.Linear(2, 2)).save(tmp_path / "m.npz")
        (tmp_path / "plain.txt").write_text("")
    finally:
        os.umask(previous)
    mode = os.stat(tmp_path / "m.npz").st_mode & 0o777
    assert mode == os.stat(tmp_path / "plain.txt").st_mode & 0o777 == 0o666 & ~umask
