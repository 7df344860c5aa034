"""The data pipeline: datasets, batches, the MNIST IDX reader, normalisation, augmentation.

Everything here runs on the host with NumPy, before a batch reaches the
model. Augmentation transforms work on a whole batch at once (vectorised,
one random draw per image), so no worker processes are needed: the compiled
kernels use OpenMP, and a process forked after OpenMP threads have run can
hang, so this pipeline never forks.
"""

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator, Mapping

import numpy as np

from . import _args

# ---------------------------------------------------------------- datasets


class ArrayDataset:
    """Arrays of the same length, indexed together: ds[i] or ds[index_array] -> tuple."""

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("ArrayDataset: give at least one array")
        arrays = tuple(_array(i, a) for i, a in enumerate(arrays))
        lengths = [len(a) for a in arrays]
        if any(n != lengths[0] for n in lengths):
            raise ValueError(f"ArrayDataset: the arrays must have the same length (axis 0), "
                             f"got shapes {[a.shape for a in arrays]}")
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)


def _array(i, a):
    """Argument i of ArrayDataset as an array with an axis 0 to index."""
    try:
        array = np.asarray(a)
    except ValueError as e:   # a ragged list
        raise ValueError(f"ArrayDataset: array {i} is not an array ({e})") from None
    if array.ndim == 0:
        raise TypeError(f"ArrayDataset: array {i} has no axis 0 to index: got "
                        f"{type(a).__name__} {a!r:.40}")
    return array


class Subset:
    """The items of dataset at the given indices."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = _indices("Subset", "indices", indices, len(dataset))

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]


def _indices(where, name, indices, size):
    """indices as a 1-D intp array of positions in [0, size): no float silently truncated,
    no negative index silently counted from the end."""
    order = np.asarray(indices)
    if order.size and order.dtype.kind not in "iu":
        raise TypeError(f"{where}: {name} must be integers, got {order.dtype} "
                        f"(first {order.flat[0]!r})")
    if order.ndim != 1:
        raise ValueError(f"{where}: {name} must be a flat sequence, got shape {order.shape}")
    if order.size and (order.min() < 0 or order.max() >= size):
        bad = order.min() if order.min() < 0 else order.max()
        raise ValueError(f"{where}: {name}: {bad} is outside the dataset's positions "
                         f"[0, {size})")
    return order.astype(np.intp)


def as_dataset(data, where=None):
    """An (x, y, ...) tuple of arrays becomes an ArrayDataset; datasets stay as they are.
    where: who asks, for the error messages."""
    if isinstance(data, (tuple, list)):
        return ArrayDataset(*data)
    if isinstance(data, np.ndarray):
        return ArrayDataset(data)
    prefix = f"{where}: " if where else ""
    if isinstance(data, Mapping):
        raise TypeError(f"{prefix}a {type(data).__name__} is not a dataset (its items are "
                        f"found by key, not by position): pass a tuple of arrays, e.g. "
                        f"(d['x'], d['y'])")
    if isinstance(data, Iterator):
        raise TypeError(f"{prefix}a {type(data).__name__} can be read only once, not batched "
                        f"again every epoch: pass arrays (or a list of them)")
    if isinstance(data, (str, bytes)) or not (hasattr(data, "__len__")
                                              and hasattr(data, "__getitem__")):
        raise TypeError(f"{prefix}expected a dataset (with __len__ and __getitem__) or a "
                        f"tuple of arrays, got {type(data).__name__}")
    return data


def _batch_indexable(dataset):
    """True when dataset[index_array] returns the whole batch (no per-item loop needed)."""
    if isinstance(dataset, Subset):
        return _batch_indexable(dataset.dataset)
    return isinstance(dataset, ArrayDataset)


def random_split(dataset, lengths, seed=None):
    """Split into non-overlapping Subsets of the given lengths (or fractions summing to 1),
    after a random permutation."""
    dataset = as_dataset(dataset)
    n = len(dataset)
    if all(isinstance(v, float) for v in lengths) and math.isclose(sum(lengths), 1.0):
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):    # hand out the remainder round-robin, as PyTorch
            counts[i % len(counts)] += 1
        lengths = counts
    lengths = [_args.integer("random_split", "lengths", v, 0, None) for v in lengths]
    if sum(lengths) != n:
        raise ValueError(f"random_split: lengths {list(lengths)} must be >= 0 and sum to the "
                         f"dataset's length {n}")
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0] + list(lengths))
    return [Subset(dataset, order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


class DataLoader:
    """Batches of a dataset (or of an (x, y) tuple of arrays) for one pass each iteration.

    shuffle draws a new order every epoch from a generator seeded by ``seed``;
    ``transform(x_batch, rng)`` (e.g. an augmentation) is applied to the first
    array of every batch. Batches are tuples of NumPy arrays.
    ``sampler``, in place of shuffle: an iterable of dataset indices with a length,
    iterated once per epoch (e.g. fastcnn.distributed.DistributedSampler); what it
    yields must be integer positions in the dataset, as many as its length.
    """

    def __init__(self, dataset, batch_size=32, shuffle=False, drop_last=False, seed=None,
                 transform=None, sampler=None):
        where = "DataLoader"
        self.batch_size = _args.integer(where, "batch_size", batch_size, 1, None)
        self.shuffle = _args.flag(where, "shuffle", shuffle)
        self.drop_last = _args.flag(where, "drop_last", drop_last)
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: give shuffle or a sampler, not both (the sampler "
                             "chooses the order)")
        if sampler is not None and not (hasattr(sampler, "__len__")
                                        and hasattr(sampler, "__iter__")):
            raise TypeError(f"DataLoader: sampler must be an iterable with a length, got "
                            f"{type(sampler).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable as transform(x, rng), "
                            f"got {type(transform).__name__}")
        self.dataset = as_dataset(dataset, where)
        self.transform, self.sampler = transform, sampler
        try:
            self.rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as e:   # numpy's kind: a negative int is a ValueError
            raise type(e)(f"DataLoader: seed must be None, an int >= 0 or a numpy Generator, "
                          f"got {seed!r}") from None

    def __len__(self):
        n, b = len(self.dataset if self.sampler is None else self.sampler), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        if self.sampler is not None:
            order = _indices("DataLoader", "the sampler's indices", list(self.sampler),
                             len(self.dataset))
            n = len(order)
            if n != len(self.sampler):
                raise ValueError(f"DataLoader: the sampler yielded {n} indices but its length "
                                 f"is {len(self.sampler)}")
        else:
            n = len(self.dataset)
            order = self.rng.permutation(n) if self.shuffle else None
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            stop = min(start + self.batch_size, n)
            index = slice(start, stop) if order is None else order[start:stop]
            batch = self._fetch(index)
            if self.transform is not None:
                batch = (self.transform(batch[0], self.rng),) + tuple(batch[1:])
            yield batch

    def _fetch(self, index):
        if _batch_indexable(self.dataset):
            batch = self.dataset[index]
        else:
            ids = range(len(self.dataset))[index] if isinstance(index, slice) else index
            items = [self.dataset[int(i)] for i in ids]
            items = [item if isinstance(item, tuple) else (item,) for item in items]
            batch = tuple(np.stack(column) for column in zip(*items))
        return batch if isinstance(batch, tuple) else (batch,)


# ---------------------------------------------------------------- IDX files (MNIST's format)

# The third byte of an IDX magic number: the element type (big-endian on disk).
IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path, magic=None):
    """An IDX file (gzip-compressed or raw) as a NumPy array of its dimensions.

    Checks the magic number (0x0000, a known type byte, the number of
    dimensions; with ``magic`` given, exactly that value) and that the data
    holds exactly as many bytes as the dimensions say. A bad file raises a
    ValueError saying what is wrong.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupted or truncated gzip data ({e})") from None
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file: {len(raw)} bytes, shorter than the "
                         f"4-byte magic number")
    (found,) = struct.unpack(">I", raw[:4])
    kind, ndim = raw[2], raw[3]
    if raw[:2] != b"\0\0" or kind not in IDX_TYPES or ndim == 0:
        raise ValueError(f"{path}: not an IDX file: magic number 0x{found:08X} (expected "
                         f"0x0000, a type byte in {{{', '.join(f'0x{t:02X}' for t in IDX_TYPES)}}}"
                         f" and a number of dimensions >= 1)")
    if magic is not None and found != magic:
        raise ValueError(f"{path}: magic number 0x{found:08X}, expected 0x{magic:08X}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need {header} "
                         f"bytes, the file has {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_TYPES[kind]
    need, have = math.prod(dims) * dtype.itemsize, len(raw) - header
    if have != need:
        what = "truncated" if have < need else "has trailing bytes"
        raise ValueError(f"{path}: {what}: the header says {dims} values of {dtype.name} "
                         f"({need} bytes) but {have} bytes follow it")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801


def read_mnist(images_path, labels_path):
    """MNIST-format images and labels: x (N, 1, H, W) float32 in [0, 1], y (N,) int64."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                         f"{len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: labels must be digits 0..9, found {labels.max()}")
    x = images[:, None].astype(np.float32) / np.float32(255)
    return x, labels.astype(np.int64)


def mnist_files(directory, kind="t10k"):
    """The images and labels files of an MNIST split in directory (.gz or raw)."""
    found = []
    for what in ("images-idx3", "labels-idx1"):
        name = os.path.join(directory, f"{kind}-{what}-ubyte")
        for candidate in (name + ".gz", name):
            if os.path.exists(candidate):
                found.append(candidate)
                break
        else:
            raise FileNotFoundError(f"no {name}[.gz] in {directory!r} (expected MNIST's file "
                                    f"names, e.g. {kind}-images-idx3-ubyte.gz)")
    return tuple(found)


def load_mnist(directory, kind="t10k"):
    """(x, y) of the MNIST split `kind` ("t10k" or "train") found in directory."""
    return read_mnist(*mnist_files(directory, kind))


# ---------------------------------------------------------------- normalisation


MNIST_MEAN, MNIST_STD = 0.1307, 0.3081   # of MNIST's training images scaled to [0, 1]


def normalize(x, mean, std):
    """(x - mean) / std as float32; mean and std are numbers or one per channel (axis 1)."""
    x = np.asarray(x, dtype=np.float32)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = np.asarray(mean, np.float32).reshape(shape) if np.ndim(mean) else np.float32(mean)
    std = np.asarray(std, np.float32).reshape(shape) if np.ndim(std) else np.float32(std)
    return (x - mean) / std


class Normalize:
    """A transform: normalize(x, mean, std)."""

    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, x, rng=None):
        return normalize(x, self.mean, self.std)

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


# ---------------------------------------------------------------- augmentation
# Each transform takes a batch (N, C, H, W) and a numpy Generator and returns a
# new batch, with one random draw per image.


def _warp(x, rotation):
    """Resample each image n at out[i, j] = x[c + R_n ((i, j) - c)] (c the centre),
    bilinearly, with zeros outside the image."""
    n, ch, h, w = x.shape
    ii, jj = np.meshgrid(np.arange(h, dtype=np.float32) - np.float32((h - 1) / 2),
                         np.arange(w, dtype=np.float32) - np.float32((w - 1) / 2), indexing="ij")
    r = rotation.astype(np.float32)[:, :, :, None, None]
    src_i = r[:, 0, 0] * ii + r[:, 0, 1] * jj + np.float32((h - 1) / 2)
    src_j = r[:, 1, 0] * ii + r[:, 1, 1] * jj + np.float32((w - 1) / 2)
    i0, j0 = np.floor(src_i), np.floor(src_j)
    fi, fj = (src_i - i0).astype(x.dtype)[:, None], (src_j - j0).astype(x.dtype)[:, None]
    # A zero border wide enough for every source pixel: corners outside the image read
    # zeros, and no index needs clipping.
    border = int(max(0, -min(i0.min(), j0.min()), max(i0.max() + 1 - h, j0.max() + 1 - w))) + 1
    rows, cols = h + 2 * border, w + 2 * border
    padded = np.zeros((n, ch, rows, cols), x.dtype)
    padded[:, :, border:border + h, border:border + w] = x
    first = (np.arange(n, dtype=np.intp) * (ch * rows * cols))[:, None, None]
    at = first + (i0.astype(np.intp) + border) * cols + (j0.astype(np.intp) + border)
    flat = padded.reshape(-1)

    def pixels(offset):
        """The pixels at offset from the top-left corners, every channel: (n, ch, h, w)."""
        return np.stack([flat.take(at + (offset + k * rows * cols)) for k in range(ch)], 1)

    top = pixels(0) * (1 - fj) + pixels(1) * fj
    bottom = pixels(cols) * (1 - fj) + pixels(cols + 1) * fj
    return top * (1 - fi) + bottom * fi


class RandomShift:
    """Shift each image by a whole number of pixels in [-max_shift, max_shift] along each
    axis, filling with zeros."""

    def __init__(self, max_shift=2):
        self.max_shift = max_shift

    def __call__(self, x, rng):
        k = self.max_shift
        n, _, h, w = x.shape
        padded = np.zeros(x.shape[:2] + (h + 2 * k, w + 2 * k), x.dtype)
        padded[:, :, k:k + h, k:k + w] = x
        out = np.empty_like(padded[:, :, :h, :w])
        for i, (di, dj) in enumerate(rng.integers(-k, k + 1, (n, 2))):
            out[i] = padded[i, :, k - di:k - di + h, k - dj:k - dj + w]
        return out

    def __repr__(self):
        return f"RandomShift(max_shift={self.max_shift})"


class RandomRotation:
    """Rotate each image about its centre by an angle drawn in [-degrees, degrees]
    (bilinear, zeros outside)."""

    def __init__(self, degrees=10.0):
        self.degrees = degrees

    def __call__(self, x, rng):
        a = np.deg2rad(rng.uniform(-self.degrees, self.degrees, len(x)))
        cos, sin = np.cos(a), np.sin(a)
        rotation = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1)
        return _warp(x, rotation)

    def __repr__(self):
        return f"RandomRotation(degrees={self.degrees})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability p (not for digits: a mirrored 2 is
    no 2; for photographs)."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, x, rng):
        flip = rng.random(len(x)) < self.p
        out = np.array(x, copy=True)
        out[flip] = out[flip][..., ::-1]
        return out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply transforms one after the other."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x, rng):
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self):
        return f"Compose({self.transforms})"
