"""Peak memory of one call of a case, measured in a fresh process per implementation.

Resident memory, the same way for every implementation. A new Python process
per implementation (so no other library's memory or pools are around) runs its
cases one after the other: make the inputs, run the step once (one-time
setup: thread pools, plans), drop the result, reset the kernel's peak-RSS
counter (write 5 to /proc/self/clear_refs), note the RSS, run the step again
and read the peak (VmHWM). The difference is the memory the call needed at
its busiest: outputs, temporaries and workspaces, including what C code
allocates outside NumPy's view (tracemalloc would miss that, and would not see
PyTorch at all). The process runs with glibc's mmap threshold pinned at 64 KiB,
so every large block freed by one case goes back to the system instead of
waiting in the heap, where a later case could reuse it unseen. Where
clear_refs is not writable (not Linux), the rise of getrusage's peak RSS over
the first call is used, which understates the call's peak when setup had
peaked higher.

Run as: python -m fastcnn.bench.memory IMPLEMENTATION THREADS CASE... [--tiny]
It prints one JSON object: {case: {"peak_bytes": ..., "method": ...}}.
"""

import gc
import json
import os
import resource
import subprocess
import sys

import numpy as np

from . import cases, impls, runner, threads


def _status():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields


def _reset_peak():
    """Reset the peak-RSS counter; False where the kernel does not let us."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(case, impl, seed=0):
    """{"peak_bytes", "method"}: the memory one call of case needs on impl."""
    call = runner.make_call(impl, case, case.inputs(np.random.default_rng(seed)))
    if _reset_peak():  # Linux: a warm-up call first, then the peak of a steady-state call
        call()
        gc.collect()
        _reset_peak()
        before = _status()["VmRSS"]
        result = call()
        peak = _status()["VmHWM"]
        method = "VmHWM after clear_refs"
    else:  # the first call's rise of the process's peak RSS
        to_bytes = 1 if sys.platform == "darwin" else 1024  # macOS counts bytes, Linux KiB
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * to_bytes
        result = call()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * to_bytes
        method = "ru_maxrss delta"
    del result, call
    gc.collect()
    return {"peak_bytes": peak - before, "method": method}


def peak_memory(impl_name, case_names, n_threads, tiny=False):
    """{case: {"peak_bytes", "method"} or {"error": why}}, from one fresh process."""
    command = [sys.executable, "-m", f"{__package__}.memory", impl_name, str(n_threads),
               *case_names] + (["--tiny"] if tiny else [])
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    # -m puts the working directory first on sys.path: run from the directory that holds
    # the fastcnn this process imported, so a source checkout (which has no compiled
    # kernels) in the current directory cannot shadow the installed package.
    import fastcnn
    home = os.path.dirname(os.path.dirname(os.path.abspath(fastcnn.__file__)))
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=home)
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        return {name: {"error": lines[-1]} for name in case_names}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    tiny = "--tiny" in argv
    impl_name, n_threads, *names = [a for a in argv if a != "--tiny"]
    impl = {i.name: i for i in impls.all_implementations()}[impl_name]
    threads.set_all(int(n_threads), torch=impl_name.startswith("torch"))
    print(json.dumps({name: measure(cases.find(name, tiny), impl) for name in names}))


if __name__ == "__main__":
    main()
