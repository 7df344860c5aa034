"""How the CUDA kernels are written, compiled and launched.

A kernel is written once as a *template*: a Python function of the float type
``F`` (``np.float32`` or ``np.float64``) that returns the kernel's code. Inside,
constants are written ``F(0.5)``, so a float32 kernel never touches float64
(Numba would promote a bare ``0.5``). ``@kernel(signature)`` registers the
template with its argument types as a function of the Numba float type, and
``template(dtype)[blocks, threads](*args)`` compiles it for that dtype on first
use (a few seconds on a GPU) and launches it.

The registry serves two checks. ``compile_check`` compiles every template for
a real GPU from exactly these signatures. On the simulator every launch checks
that its arguments have exactly these types, so the tests prove that the
signatures compile_check compiled are the ones the ops launch.
"""

import math
import sys
import threading
import warnings

import numpy as np
from numba import config, cuda, from_dtype, typeof, types

SIMULATOR = bool(config.ENABLE_CUDASIM)


def _lock_simulator_shared_arrays():
    """Make the simulator hand every thread of a block the same static shared array.

    The simulator runs a block's threads as Python threads, and cuda.shared.array looks
    the array up by its caller's source line and creates it on the first miss, without
    a lock: a thread switch between the lookup and the store lets two threads both miss
    and each get an array of its own (np.empty, so stale values rather than NaN). That
    thread's shared writes are then lost to the block, and it reads what nobody wrote:
    a block sum or a GEMM tile of the launch's first block comes out wrong, now and then
    (more often on a loaded machine). The lookup and the store are done under a lock
    here; the key is the simulator's own, (file, line) of the caller."""
    from numba.cuda.simulator import kernelapi
    shared = kernelapi.FakeCUDAShared
    unlocked, lock = shared.array, threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:   # dynamic shared memory: nothing to race on
            return unlocked(self, shape, dtype, alignment)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            found = self._allocations.get(key)
            if found is None:
                if isinstance(dtype, kernelapi.types.Type):
                    dtype = kernelapi.numpy_support.as_dtype(dtype)
                found = self._allocations[key] = np.empty(shape, dtype)
        return found
    shared.array = array


if SIMULATOR:
    _lock_simulator_shared_arrays()

# Threads per block for the elementwise and reduction kernels. The simulator runs
# every CUDA thread as a Python thread, so it gets few of them (same code, smaller
# blocks; grid-stride loops cover the rest).
THREADS = 32 if SIMULATOR else 256
# Enough blocks to fill any current GPU; grid-stride loops take the remainder.
MAX_BLOCKS = 2 if SIMULATOR else 4096

# Argument types for the signatures; F-dependent ones come from the template's f.
i32, i64, u64, boolean = types.int32, types.int64, types.uint64, types.boolean

# Blocks along the y and z axes of a grid (the hardware's limit is 65535).
MAX_GRID_YZ = 2 if SIMULATOR else 65535

REGISTRY = []


def blocks_for(n, threads=THREADS):
    """Blocks for n independent items, one per thread (grid-stride loops beyond MAX_BLOCKS)."""
    return min(math.ceil(n / threads), MAX_BLOCKS)


_sm_count = None


def target_blocks():
    """Blocks that fill the GPU twice over (two resident blocks per multiprocessor)."""
    global _sm_count
    if _sm_count is None:
        _sm_count = 1 if SIMULATOR else cuda.get_current_device().MULTIPROCESSOR_COUNT
    return 2 * _sm_count


def image_grid(pixels, channels, images):
    """The grid of a kernel over (images, channels, pixels) along (z, y, x), THREADS per
    block along x; the kernel loops with grid strides over whatever the grid does not
    cover, so the grid can be capped (and is small on the simulator)."""
    return (blocks_for(pixels), min(channels, MAX_GRID_YZ), min(images, MAX_GRID_YZ))


class Kernel:
    """A kernel template, compiled per (dtype, variant) on first use.

    variants are the tuples of extra compile-time parameters the template takes
    after F (tile sizes of the GEMM); compile_check compiles each of them for each
    of dtypes. launch_bounds(dtype, *variant), if given, returns (threads per
    block, blocks per multiprocessor) for the compiler to budget registers by.
    """

    def __init__(self, template, signature, variants, dtypes, launch_bounds):
        self.template, self.signature = template, signature
        self.variants, self.dtypes = variants, tuple(np.dtype(d) for d in dtypes)
        self._launch_bounds = launch_bounds
        self.name = template.__name__
        self._compiled = {}
        REGISTRY.append(self)

    def options(self, dtype, *variant):
        """Compiler options for cuda.jit and compile_ptx (none on the simulator)."""
        bounds = self._launch_bounds and self._launch_bounds(np.dtype(dtype), *variant)
        return {"launch_bounds": bounds} if bounds and not SIMULATOR else {}

    def source(self, dtype, *variant):
        """The kernel's Python function for this dtype (what compile_ptx compiles)."""
        return self.template(np.dtype(dtype).type, *variant)

    def argtypes(self, dtype):
        return tuple(self.signature(from_dtype(np.dtype(dtype))))

    def __call__(self, dtype, *variant):
        key = (np.dtype(dtype), variant)
        launcher = self._compiled.get(key)
        if launcher is None:
            dtype = key[0]
            dispatcher = cuda.jit(self.source(dtype, *variant), **self.options(dtype, *variant))
            launcher = _Launcher(self, dispatcher, dtype)
            self._compiled[key] = launcher
        return launcher


FLOATS = (np.float32, np.float64)


def kernel(signature, variants=((),), dtypes=FLOATS, launch_bounds=None):
    """Register a template: signature(f) gives its argument types for element type f."""
    return lambda template: Kernel(template, signature, variants, dtypes, launch_bounds)


class _Launcher:
    """kernel(dtype)[blocks, threads](*args): skips empty grids, and on the simulator
    checks the arguments' types against the registered signature."""

    def __init__(self, kernel, dispatcher, dtype):
        self.kernel, self.dispatcher, self.dtype = kernel, dispatcher, dtype
        self._configured = {}

    def __getitem__(self, config):
        blocks, threads = config
        if 0 in (blocks if isinstance(blocks, tuple) else (blocks,)):
            return _nothing   # CUDA refuses empty grids; there is no work
        if SIMULATOR:   # (the simulator's configured kernel is the kernel itself: no cache)
            launch = self.dispatcher[blocks, threads]

            def checked(*args):
                self._check_types(args)
                launch(*args)
            return checked
        # Configured launches are kept: a training step repeats the same few.
        launch = self._configured.get(config)
        if launch is None:
            with warnings.catch_warnings():
                # Small grids are deliberate here (a block per channel, a handful of
                # rows); Numba would warn about each.
                warnings.filterwarnings("ignore", message="Grid size .* under-utilization")
                launch = self.dispatcher[blocks, threads]
            if len(self._configured) > 256:
                self._configured.clear()
            self._configured[config] = launch
        return launch

    def _check_types(self, args):
        want = self.kernel.argtypes(self.dtype)
        got = tuple(typeof(a) for a in args)
        if got != want:
            bad = [f"argument {i}: {g} instead of {w}"
                   for i, (g, w) in enumerate(zip(got, want)) if g != w]
            raise TypeError(f"kernel {self.kernel.name} launched with types that differ from "
                            f"its registered signature: {'; '.join(bad) or 'argument count'}")


def _nothing(*args):
    pass
