"""The arrays a layer writes its results into, reused from step to step.

A layer asks ``out(key, *inputs)`` for the array to pass as an op's ``out=`` and
hands what the op returned to ``keep(key, result)``. The first time, and whenever
the inputs' shapes, dtypes or device change, there is none (``None``): the op
allocates, and ``keep`` notes the result (its shape, and the array itself when an
op could write into it). From then on ``out`` gives an array of that shape: last
step's, unless someone else still holds it (a caller keeping a prediction, or a
view of it), in which case a new one. So a training
loop allocates its activations once, nothing a caller kept is ever overwritten
behind its back, and a layer never computes the shape of a result itself:
``fastcnn.functional`` does, once.
"""

import sys

from .. import _args, backends


def _refs_when_unheld():
    """What sys.getrefcount reports, on Reuse._array's code path, for an array held only by
    the arrays dict (interpreters differ in what they count, so measure it)."""
    arrays = {"y": object()}
    buf = arrays.get("y")
    return sys.getrefcount(buf)


_UNHELD = _refs_when_unheld()


def _memory(buf):
    """What views of buf keep alive besides buf: nothing more for NumPy arrays (a view's
    base is buf itself); the device memory for Numba's device arrays, whose views share
    it rather than referring to the array (gpu_data on a GPU, _ary on the simulator)."""
    for name in ("gpu_data", "_ary"):
        memory = getattr(buf, name, None)
        if memory is not None:
            return memory
    return None


def _memory_refs(buf):
    """sys.getrefcount of buf's device memory (0 for NumPy arrays), on one code path, so a
    count taken when the buffer was made compares with one taken later."""
    memory = _memory(buf)
    return 0 if memory is None else sys.getrefcount(memory)


def _signature(inputs):
    """What fixes the shapes, dtypes and device of an op's results, given the layer: its
    inputs' shapes, dtypes and devices (shapes may also be given as tuples). None when
    an input is not an array (a list: functional converts it; nothing is reused)."""
    signature = []
    for a in inputs:
        if isinstance(a, tuple):
            signature.append(a)
        elif hasattr(a, "shape") and hasattr(a, "dtype"):
            signature.append((tuple(a.shape), a.dtype, backends.on_gpu(a)))
        else:
            return None
    return tuple(signature)


class Reuse:
    """A layer's reusable result arrays, by key ("y", "dx", ...)."""

    def __init__(self):
        self.arrays = {}     # key -> the array handed out last
        self._asked = {}     # key -> the signature of the inputs out() was last asked with
        self._made = {}      # key -> (signature, shape, dtype, on gpu) of the last result
        self._unheld = {}    # key -> its device memory's reference count when unshared

    def out(self, key, *inputs):
        """The array to pass as out= for the result called key (a tuple of keys: a tuple),
        computed from inputs; None when these inputs are new (the op allocates)."""
        if isinstance(key, tuple):
            return tuple(self.out(k, *inputs) for k in key)
        signature = _signature(inputs)
        self._asked[key] = signature
        made = self._made.get(key)
        if signature is None or made is None or made[0] != signature:
            return None
        return self._array(key, *made[1:])

    def keep(self, key, result):
        """Note what the op returned for out(key, ...) (tuples alike) and return it."""
        if isinstance(key, tuple):
            return tuple(self.keep(k, r) for k, r in zip(key, result))
        if result is None or result is self.arrays.get(key):
            return result
        self.arrays.pop(key, None)     # made for other inputs: of no more use
        signature = self._asked.get(key)
        if signature is not None:
            self._made[key] = (signature, tuple(result.shape), result.dtype,
                               backends.on_gpu(result))
            if _args.c_contiguous(result) and _args.writeable(result):   # usable as out=
                self.arrays[key] = result
                self._unheld[key] = _memory_refs(result)
        return result

    def reuse(self, key, shape, dtype, like):
        """An array of shape and dtype where `like` lives, for a caller that knows the shape:
        last step's, when nobody else holds it, else a new one. None when the shape is
        not valid (the op explains why)."""
        shape = tuple(int(s) for s in shape)
        if any(s < 1 for s in shape):
            return None
        return self._array(key, shape, dtype, backends.on_gpu(like))

    def clear(self):
        """Forget every array (the layer moved to another device)."""
        for d in (self.arrays, self._asked, self._made, self._unheld):
            d.clear()

    def _array(self, key, shape, dtype, gpu):
        buf = self.arrays.get(key)
        if (buf is not None and tuple(buf.shape) == shape and buf.dtype == dtype
                and backends.on_gpu(buf) == gpu
                and sys.getrefcount(buf) <= _UNHELD
                and _memory_refs(buf) <= self._unheld[key]):
            return buf
        del buf
        self.arrays[key] = backends.get("cuda" if gpu else "cpu").empty(shape, dtype)
        self._unheld[key] = _memory_refs(self.arrays[key])
        return self.arrays[key]
