"""Compile every kernel of the cuda backend for a real GPU, without needing one.

    NUMBA_ENABLE_CUDASIM=0 python -m fastcnn.backends.cuda.compile_check [-j JOBS] [-v]

The simulator runs kernels as Python, so it accepts code the GPU compiler
rejects (unsupported functions, type errors in branches never taken). This
compiles each registered kernel, for each of its variants (the GEMM's tile
shapes) and dtypes, with ``numba.cuda.compile_ptx`` for compute capability 8.0,
from the very signatures the launches use (the simulator tests check that).
It also fails a float32 kernel whose PTX contains any float64 instruction: a
bare Python float in a kernel silently promotes a whole expression to float64,
which is 2 to 64 times slower on a GPU.

Exits with status 1, listing the failures, if any kernel fails.
"""

import argparse
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial

CC = (8, 0)


def _jobs():
    """(kernel name, variant, dtype name) for every compilation to do."""
    from . import _jit
    return [(k.name, variant, dtype.name) for k in _jit.REGISTRY
            for variant in k.variants for dtype in k.dtypes]


def _assembled(ptx):
    """What ptxas makes of the PTX (registers per thread, bytes spilled to local memory),
    through nvJitLink, which needs no GPU; {} where it is not installed."""
    try:
        from cuda.bindings import nvjitlink
    except ImportError:
        return {}
    data = ptx.encode()
    handle = nvjitlink.create(2, [f"-arch=sm_{CC[0]}{CC[1]}", "-verbose"])
    try:
        nvjitlink.add_data(handle, nvjitlink.InputType.PTX, data, len(data), "kernel")
        nvjitlink.complete(handle)
        log = bytearray(nvjitlink.get_info_log_size(handle))
        nvjitlink.get_info_log(handle, log)
    finally:
        nvjitlink.destroy(handle)
    log = log.decode(errors="replace")
    registers = re.search(r"Used (\d+) registers", log)
    spilled = re.search(r"(\d+) bytes spill stores", log)
    return {"registers": int(registers.group(1)) if registers else None,
            "spilled": int(spilled.group(1)) if spilled else None}


def _compile(job, assemble=False):
    """Compile one kernel; (job, seconds, facts about the code or None, error or None)."""
    import numpy as np
    from numba import cuda

    from . import _jit
    name, variant, dtype = job
    k = next(k for k in _jit.REGISTRY if k.name == name)
    start = time.perf_counter()
    try:
        ptx, _ = cuda.compile_ptx(k.source(dtype, *variant), k.argtypes(dtype), cc=CC,
                                  **k.options(dtype, *variant))
    except Exception as e:   # noqa: BLE001 - report every failure, whatever it is
        return job, time.perf_counter() - start, None, f"{type(e).__name__}: {e}"
    facts = {"f64": len(re.findall(r"\.f64\b", ptx)), **(_assembled(ptx) if assemble else {})}
    error = None
    if np.dtype(dtype) == np.float32 and facts["f64"]:
        error = f"{facts['f64']} float64 instructions in a float32 kernel"
    return job, time.perf_counter() - start, facts, error


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                        help="compile in this many processes (default: one per core)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="one line per kernel, with its registers and spills (from ptxas)")
    args = parser.parse_args(argv)

    from numba import config
    if config.ENABLE_CUDASIM:
        sys.exit("compile_check needs Numba's real CUDA target: run it with "
                 "NUMBA_ENABLE_CUDASIM=0")
    import fastcnn.backends.cuda  # noqa: F401  (registers every kernel)

    jobs = _jobs()
    start = time.perf_counter()
    compile_one = partial(_compile, assemble=args.verbose)
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(compile_one, jobs))
    else:
        results = [compile_one(job) for job in jobs]
    failures = [(job, error) for job, _, _, error in results if error]
    for job, seconds, facts, error in results:
        if args.verbose or error:
            name, variant, dtype = job
            label = f"{name}{list(variant) if variant else ''} {dtype}"
            status = f"FAILED: {error}" if error else (
                f"ok {seconds:4.1f} s, {facts.get('registers')} registers, "
                f"{facts.get('spilled')} bytes spilled")
            print(f"{label:42s} {status}")
    kernels = len({job[0] for job in jobs})
    print(f"compile_check: {len(jobs) - len(failures)} of {len(jobs)} compilations of "
          f"{kernels} kernels for sm_{CC[0]}{CC[1]} passed in {time.perf_counter() - start:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
