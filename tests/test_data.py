"""The data pipeline: batching, splitting, the IDX reader (on small files written here),
normalisation and the augmentation transforms."""

import gzip
import struct

import numpy as np
import pytest

from fastcnn import data


def test_dataloader_batches_everything_once():
    x, y = np.arange(10)[:, None] * np.ones((1, 3)), np.arange(10)
    loader = data.DataLoader((x, y), batch_size=4, shuffle=True, seed=0)
    assert len(loader) == 3
    first = [b[1].copy() for b in loader]
    assert [len(b) for b in first] == [4, 4, 2]
    assert sorted(np.concatenate(first)) == list(range(10))
    for xb, yb in loader:
        np.testing.assert_array_equal(xb[:, 0], yb)   # rows stay paired
    again = data.DataLoader((x, y), batch_size=4, shuffle=True, seed=0)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in again]), np.concatenate(first))
    assert not np.array_equal(np.concatenate([b[1] for b in again]), np.concatenate(first))
    plain = data.DataLoader((x, y), batch_size=4, drop_last=True)
    assert len(plain) == 2 and [list(b[1]) for b in plain] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(ValueError, match="DataLoader: batch_size must be >= 1, got 0"):
        data.DataLoader((x, y), batch_size=0)
    with pytest.raises(ValueError, match="same length"):
        data.DataLoader((x, y[:3]))


def test_dataloader_generic_dataset_and_transform():
    class Squares:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full(2, i * i, np.float32), i

    loader = data.DataLoader(Squares(), batch_size=2, transform=lambda xb, rng: xb + 1)
    batches = list(loader)
    np.testing.assert_array_equal(batches[1][0], [[5, 5], [10, 10]])
    np.testing.assert_array_equal(batches[2][1], [4])


def test_random_split():
    ds = data.ArrayDataset(np.arange(10))
    a, b = data.random_split(ds, [7, 3], seed=1)
    assert len(a) == 7 and len(b) == 3
    assert sorted(np.concatenate([a[np.arange(7)][0], b[np.arange(3)][0]])) == list(range(10))
    assert [len(s) for s in data.random_split(ds, [0.5, 0.3, 0.2])] == [5, 3, 2]
    loader = data.DataLoader(b, batch_size=2)
    assert sum(len(x) for (x,) in loader) == 3
    with pytest.raises(ValueError, match="sum to the dataset's length 10"):
        data.random_split(ds, [5, 4])


# ---------------------------------------------------------------- IDX files


def idx_bytes(array, type_byte=0x08):
    head = struct.pack(">BBBB", 0, 0, type_byte, array.ndim)
    head += struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.astype(data.IDX_TYPES[type_byte]).tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (3, 4, 5)).astype(np.uint8)
    raw = idx_bytes(images)
    path = tmp_path / "images.idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    np.testing.assert_array_equal(data.read_idx(path, data.IMAGES_MAGIC), images)
    floats = np.linspace(-1, 1, 6).reshape(2, 3)
    path.write_bytes(idx_bytes(floats, 0x0D))
    np.testing.assert_allclose(data.read_idx(path), floats, rtol=1e-7)


@pytest.mark.parametrize("mutate, match", [
    (lambda b: b[:-1], r"truncated: the header says \(3, 4, 5\) values of uint8 \(60 bytes\) "
                       r"but 59 bytes follow it"),
    (lambda b: b + b"\0", "has trailing bytes"),
    (lambda b: b[:10], "truncated IDX header"),
    (lambda b: b[:2], "shorter than the 4-byte magic number"),
    (lambda b: b"\x01" + b[1:], r"not an IDX file: magic number 0x01000803"),
    (lambda b: b[:2] + b"\x07" + b[3:], r"not an IDX file: magic number 0x00000703"),
    (lambda b: b[:3] + b"\x02" + b[4:], r"magic number 0x00000802, expected 0x00000803"),
    (lambda b: gzip.compress(b)[:-10], "corrupted or truncated gzip data"),
])
def test_read_idx_rejects_bad_files(tmp_path, mutate, match):
    path = tmp_path / "bad.idx"
    path.write_bytes(mutate(idx_bytes(np.zeros((3, 4, 5), np.uint8))))
    with pytest.raises(ValueError, match=match):
        data.read_idx(path, data.IMAGES_MAGIC)


def test_load_mnist_from_a_directory(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (4, 28, 28)).astype(np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([7, 2, 1, 0])))
    x, y = data.load_mnist(tmp_path)
    assert x.shape == (4, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0] * 255, images, atol=1e-4)
    np.testing.assert_array_equal(y, [7, 2, 1, 0])
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([7, 2, 1])))
    with pytest.raises(ValueError, match="holds 4 images but .* holds 3 labels"):
        data.load_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([7, 2, 1, 12])))
    with pytest.raises(ValueError, match="labels must be digits 0..9, found 12"):
        data.load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load_mnist(tmp_path, "train")


# ---------------------------------------------------------------- transforms


def test_normalize():
    x = np.array([[[[0.0, 1.0]]], [[[0.5, 0.25]]]])
    np.testing.assert_allclose(data.normalize(x, 0.5, 0.25), (x - 0.5) / 0.25, rtol=1e-6)
    two = np.ones((1, 2, 1, 1))
    np.testing.assert_allclose(data.Normalize([0, 1], [1, 2])(two)[0, :, 0, 0], [1, 0])
    assert data.normalize(x, 0, 1).dtype == np.float32


def test_random_shift_moves_whole_pixels():
    x = np.zeros((50, 1, 7, 7), np.float32)
    x[:, 0, 3, 3] = 1
    out = data.RandomShift(2)(x, np.random.default_rng(0))
    assert out.shape == x.shape
    for img in out[:, 0]:
        assert img.sum() == 1 and img.max() == 1   # one lit pixel, moved, never blurred
        (i,), (j,) = np.nonzero(img.max(axis=1))[0:1], np.nonzero(img.max(axis=0))[0:1]
        assert abs(i - 3) <= 2 and abs(j - 3) <= 2
    assert len({tuple(np.argwhere(img)[0]) for img in out[:, 0]}) > 10


def test_random_rotation():
    rng = np.random.default_rng(1)
    x = rng.random((4, 2, 9, 9)).astype(np.float32)
    np.testing.assert_allclose(data.RandomRotation(0)(x, rng), x, atol=1e-6)
    quarter = np.broadcast_to(np.array([[0.0, -1.0], [1.0, 0.0]]), (4, 2, 2))   # 90 degrees
    np.testing.assert_allclose(data._warp(x, quarter),
                               np.rot90(x, -1, axes=(2, 3)), atol=1e-6)
    centre = np.zeros((8, 1, 9, 9), np.float32)
    centre[:, 0, 4, 4] = 1                       # the centre stays where it is
    np.testing.assert_allclose(data.RandomRotation(20)(centre, rng)[:, 0, 4, 4], 1, atol=1e-6)
    bar = np.zeros((8, 1, 21, 21), np.float32)
    bar[:, 0, 10, 3:18] = 1                      # rotating a bar moves its ends
    moved = np.abs(data.RandomRotation(30)(bar, rng) - bar).sum(axis=(1, 2, 3))
    assert (moved > 1).sum() >= 6


def test_random_horizontal_flip_and_compose():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 1, 3, 4)
    out = data.RandomHorizontalFlip(1.0)(x, np.random.default_rng(0))
    np.testing.assert_array_equal(out, x[..., ::-1])
    np.testing.assert_array_equal(data.RandomHorizontalFlip(0.0)(x, np.random.default_rng(0)), x)
    both = data.Compose([data.RandomHorizontalFlip(1.0), data.RandomHorizontalFlip(1.0)])
    np.testing.assert_array_equal(both(x, np.random.default_rng(0)), x)


@pytest.mark.parametrize("dataset, error, match", [
    ({"x": np.zeros(3)}, TypeError,
     r"DataLoader: a dict is not a dataset .*\(d\['x'\], d\['y'\]\)"),
    ({1, 2}, TypeError, "DataLoader: expected a dataset .* got set"),
    ((i for i in range(3)), TypeError, "DataLoader: a generator can be read only once"),
    ("abc", TypeError, "DataLoader: expected a dataset .* got str"),
    ((np.zeros(3), np.zeros(4)), ValueError, r"same length .*\[\(3,\), \(4,\)\]"),
    ((None,), TypeError, "ArrayDataset: array 0 has no axis 0"),
    (([[1], [1, 2]],), ValueError, "ArrayDataset: array 0 is not an array"),
])
def test_dataloader_refuses_what_is_no_dataset(dataset, error, match):
    with pytest.raises(error, match=match):
        data.DataLoader(dataset)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(batch_size=0), ValueError, "DataLoader: batch_size must be >= 1, got 0"),
    (dict(batch_size=-2), ValueError, "DataLoader: batch_size must be >= 1, got -2"),
    (dict(batch_size=2.0), TypeError, "DataLoader: batch_size must be an int, got 2.0"),
    (dict(batch_size=True), TypeError, "DataLoader: batch_size must be an int, got True"),
    (dict(shuffle="yes"), TypeError, "DataLoader: shuffle must be True or False"),
    (dict(seed=-1), ValueError, "DataLoader: seed must be None, an int >= 0"),
    (dict(seed="a"), TypeError, "DataLoader: seed must be None, an int >= 0"),
    (dict(transform=3), TypeError, "DataLoader: transform must be callable"),
    (dict(sampler=5), TypeError, "DataLoader: sampler must be an iterable with a length"),
])
def test_dataloader_checks_its_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.DataLoader((np.zeros(4),), **kwargs)


class Sampler:
    def __init__(self, indices, length=None):
        self.indices, self.length = indices, length

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices) if self.length is None else self.length


@pytest.mark.parametrize("sampler, error, match", [
    (Sampler([0, 5]), ValueError, r"the sampler's indices: 5 is outside the dataset's "
                                  r"positions \[0, 3\)"),
    (Sampler([0, -1]), ValueError, r"the sampler's indices: -1 is outside the dataset's "
                                   r"positions \[0, 3\)"),
    (Sampler([0.5]), TypeError, r"the sampler's indices must be integers, got float64"),
    (Sampler([0, 1], length=3), ValueError, "the sampler yielded 2 indices but its length is 3"),
])
def test_dataloader_checks_the_samplers_indices(sampler, error, match):
    """Out of range (IndexError before), negative (counted from the end before), floats
    (truncated before) and a length that lies (empty batches before)."""
    loader = data.DataLoader((np.arange(3), np.arange(3)), batch_size=2, sampler=sampler)
    with pytest.raises(error, match=f"DataLoader: {match}"):
        list(loader)


def test_subsets_and_splits_check_their_indices():
    ds = data.ArrayDataset(np.arange(5))
    with pytest.raises(ValueError, match=r"Subset: indices: 5 is outside .*\[0, 5\)"):
        data.Subset(ds, [0, 5])
    with pytest.raises(TypeError, match="random_split: lengths must be an int, got 2.5"):
        data.random_split(ds, [2.5, 2.5])
    assert [len(s) for s in data.random_split(ds, [0.6, 0.4], seed=0)] == [3, 2]
