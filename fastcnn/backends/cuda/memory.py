"""An optional device-memory pool for Numba: CUDA's stream-ordered allocator.

Numba allocates every device array with cuMemAlloc and frees them, ten at a
time, with cuMemFree, which waits for the whole GPU to finish. A training loop
that allocates its activations each step (layers that do not pass out=) then
stalls every few ops. With ``use_memory_pool()`` (or ``FASTCNN_CUDA_MEMORY=pool``
in the environment before the first GPU array is made), device memory comes
from cuMemAllocAsync and goes back with cuMemFreeAsync on the default stream,
which all fastcnn kernels use: a free is queued behind the work that uses the
memory, nothing waits, and the pool keeps freed memory for the next step.

It replaces Numba's memory manager for the whole process, so it is opt-in, and
it only takes effect for a CUDA context created afterwards.
"""

import os
import weakref

from numba import config, cuda

if not config.ENABLE_CUDASIM:
    from cuda.bindings import driver as binding
    from numba.cuda.cudadrv.driver import driver

    class StreamOrderedPool(cuda.GetIpcHandleMixin, cuda.HostOnlyCUDAMemoryManager):
        """Numba EMM plugin: device memory from the device's default memory pool."""

        _DEFAULT_STREAM = binding.CUstream(0)

        def initialize(self):
            super().initialize()
            # Keep freed memory in the pool instead of returning it at each synchronisation.
            pool = driver.cuDeviceGetDefaultMemPool(self.context.device.id)
            driver.cuMemPoolSetAttribute(
                pool, binding.CUmemPool_attribute.CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                binding.cuuint64_t(2 ** 64 - 1))

        def memalloc(self, size):
            pointer = self._attempt_allocation(
                lambda: driver.cuMemAllocAsync(size, self._DEFAULT_STREAM))
            deallocations = self.deallocations

            def free():
                # Through Numba's queue of pending frees, which is held off while the
                # context is being torn down; the frees themselves never wait.
                deallocations.add_item(_free_async, pointer, size)
            return cuda.MemoryPointer(weakref.proxy(self.context), pointer, size, finalizer=free)

        def get_memory_info(self):
            free, total = driver.cuMemGetInfo()
            return cuda.MemoryInfo(free=free, total=total)

        @property
        def interface_version(self):
            return 1

    def _free_async(pointer):
        driver.cuMemFreeAsync(pointer, StreamOrderedPool._DEFAULT_STREAM)


def use_memory_pool():
    """Make Numba allocate device memory from CUDA's stream-ordered pool (see above)."""
    if config.ENABLE_CUDASIM:
        return   # the simulator's "device" memory is NumPy's
    cuda.set_memory_manager(StreamOrderedPool)


if os.environ.get("FASTCNN_CUDA_MEMORY") == "pool":
    use_memory_pool()
