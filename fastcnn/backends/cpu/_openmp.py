"""Load GNU OpenMP (through the threads module) with a short spin of its idle threads.

libgomp's idle threads spin for about 300,000 turns before they sleep. On a machine
whose cores are busy with other work, a spinning thread takes a core from the one
computing: the seed CNN's forward pass at batch 100 ran 3x slower on two threads than on
one (load 3.5 on 2 cores), and as fast as on one with a short spin, which costs a few
microseconds a parallel region on an idle machine. libgomp reads the setting once, as
it loads; the caller's own OpenMP settings win, and libraries loaded later never see it.
"""

import os

_SPIN = not {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & set(os.environ)
if _SPIN:
    os.environ["GOMP_SPINCOUNT"] = "1000"
try:
    from . import threads  # noqa: F401,E402
finally:
    if _SPIN:
        del os.environ["GOMP_SPINCOUNT"]
