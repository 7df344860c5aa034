"""The MPI world: joining it when a launcher started this process, this process's rank,
the ranks' share of the cores, sums over the ranks, and ending the whole job when one
rank fails (with its report delivered first)."""

import os
import stat
import struct
import sys
import time
import traceback

import numpy as np

# Environment variables that launchers set in the processes they start: MPICH's and Intel
# MPI's hydra and Slurm's PMI-2 (PMI_*), Open MPI (OMPI_*), PMIx launchers, MVAPICH2.
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE",
                           "MV2_COMM_WORLD_SIZE")
LAUNCHER_VARIABLES = LAUNCHER_SIZE_VARIABLES + ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")

_comm = None          # mpi4py's COMM_WORLD once init() found a launcher, else None
_local = (0, 1)       # (rank among the ranks on this node, their number)
_initialised = False
_previous_excepthook = None


def _launched():
    """True when a launcher (mpiexec, srun) started this process, or the program itself
    already imported mpi4py.MPI."""
    return "mpi4py.MPI" in sys.modules or any(v in os.environ for v in LAUNCHER_VARIABLES)


def init():
    """Join the MPI world when this process was started by mpiexec (idempotent); returns
    the world size. Called by everything below, so calling it yourself is optional.

    A plain ``python script.py`` never starts MPI: the world is this one process. With
    more than one rank, init also (1) makes an uncaught exception on any rank print its
    traceback and abort the whole job (MPI_Abort) instead of leaving the other ranks
    waiting forever, and (2) unless OMP_NUM_THREADS is set, gives each rank its share of
    this node's cores for the compiled kernels and BLAS (one thread each for two ranks
    on two cores), as ranks with all cores each would fight over them."""
    global _comm, _initialised
    if _initialised:
        return world_size()
    if _launched():
        try:
            from mpi4py import MPI
        except ImportError:
            size = next((os.environ[v] for v in LAUNCHER_SIZE_VARIABLES if v in os.environ),
                        "1")
            if size != "1":
                raise ImportError(
                    f"this process was started by an MPI launcher with {size} processes but "
                    f"mpi4py is not installed: pip install 'fastcnn[dist]' (on a cluster, "
                    f"pip install mpi4py against the cluster's MPI)") from None
        else:
            _comm = MPI.COMM_WORLD
    _initialised = True
    if world_size() > 1:
        _abort_on_uncaught_exceptions()
        _find_node()
        _share_cores()
    return world_size()


def comm():
    """The mpi4py communicator of all ranks (COMM_WORLD), or None in a world of one."""
    init()
    return _comm


def rank():
    """This process's rank: 0 .. world_size() - 1 (0 without mpiexec)."""
    init()
    return 0 if _comm is None else _comm.Get_rank()


def world_size():
    """The number of processes training together (1 without mpiexec)."""
    if not _initialised:
        init()
    return 1 if _comm is None else _comm.Get_size()


def local_rank():
    """This process's rank among the ranks on its node (machine): the GPU to pin it to,
    with one process per GPU."""
    init()
    return _local[0]


def is_main():
    """True on rank 0: the rank that prints, writes checkpoints and plots."""
    return rank() == 0


def barrier():
    if world_size() > 1:
        _comm.Barrier()


def _abort_on_uncaught_exceptions():
    """An exception no one catches ends this rank; the others would wait for it in their
    next collective forever. So report the traceback, then abort every rank."""
    global _previous_excepthook
    if _previous_excepthook is not None:
        return
    _previous_excepthook = sys.excepthook

    def abort_job(kind, value, tb):
        if _previous_excepthook is sys.__excepthook__:
            abort(value)            # the traceback goes out with abort's report
        else:                       # the program's own hook says it its way
            _previous_excepthook(kind, value, tb)
            abort(value, show=False)

    sys.excepthook = abort_job


def abort(error=None, show=True):
    """End every rank now (MPI_Abort), after reporting error's traceback (with show) and
    which rank ended the job on stderr; the exit status is error's (a SystemExit's code),
    else 1. Does nothing in a world of one.

    MPI_Abort ends the job at once, and the launcher stops forwarding the ranks' output:
    what this rank wrote but the launcher had not yet read is lost (MPICH, on a busy
    machine, kept only a traceback's first line). So the report goes out in one write to
    the raw stderr, and the rank waits until the launcher has read all its output
    (_wait_until_read; DELIVERY_SECONDS at most) before it aborts."""
    if world_size() == 1:
        return
    report = "".join(traceback.format_exception(error)) if show and error is not None else ""
    code = error.code if isinstance(error, SystemExit) else 1
    code = code if isinstance(code, int) and code else 1
    why = "" if error is None else f" after {type(error).__name__}: {error}"
    report += (f"fastcnn.distributed: rank {rank()} of {world_size()} stops{why}; aborting "
               f"all ranks\n")
    _deliver(report)
    _comm.Abort(code)


DELIVERY_SECONDS = 5.0    # how long a failing rank waits for its output to be read


def _deliver(report):
    """Write report to stderr (fd 2, after what Python still buffers for stdout and
    stderr), then wait until whoever reads stdout and stderr has read all of it."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):    # None, closed, a broken pipe
            pass
    data = report.encode("utf-8", "backslashreplace")
    while data:
        try:
            data = data[os.write(2, data):]
        except OSError:
            break
    deadline = time.monotonic() + DELIVERY_SECONDS
    for fd in (1, 2):
        _wait_until_read(fd, deadline)


def _wait_until_read(fd, deadline):
    """Return once the reader of fd has taken everything written to it, or at deadline:
    when a pipe or socket holds no unread bytes (FIONREAD, TIOCOUTQ, which Linux answers
    on the writing end), or a terminal has sent its output (tcdrain). A file needs no
    wait: its readers see every write at once."""
    try:
        import fcntl
        import termios
        if os.isatty(fd):
            termios.tcdrain(fd)
            return
        mode = os.fstat(fd).st_mode
        request = termios.FIONREAD if stat.S_ISFIFO(mode) else \
            termios.TIOCOUTQ if stat.S_ISSOCK(mode) else None
        while request is not None and time.monotonic() < deadline:
            unread = struct.unpack("i", fcntl.ioctl(fd, request, b"\0" * 4))[0]
            if unread <= 0:
                return
            time.sleep(0.005)
    except (ImportError, AttributeError, OSError):   # no such calls here, or fd is closed
        return


def _find_node():
    """The ranks that share this node's memory (MPI's shared-memory split)."""
    global _local
    from mpi4py import MPI
    node = _comm.Split_type(MPI.COMM_TYPE_SHARED)
    _local = (node.Get_rank(), node.Get_size())
    node.Free()


def _share_cores():
    """Threads per rank: the cores this process may use, shared with the other ranks on
    this node; skipped when the user chose with OMP_NUM_THREADS."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    local = _local[1]
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:      # no affinity masks (macOS)
        cores = os.cpu_count() or 1
    # A launcher that binds each rank to its own cores leaves fewer in the mask than the
    # node has: then all of them are this rank's.
    threads = max(1, cores // local) if cores >= (os.cpu_count() or 1) else cores
    set_threads(threads)


def set_threads(n):
    """n threads for the compiled kernels and for BLAS in this process."""
    from threadpoolctl import threadpool_limits

    from ..backends.cpu.threads import set_num_threads
    from ..backends import cpu  # noqa: F401  (loads SciPy's BLAS, so that the limit reaches it)
    set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")


def allreduce_sum(values):
    """The sums over all ranks of a few numbers (a float64 array); values in a world of one."""
    values = np.array(values, dtype=np.float64)
    if world_size() > 1:
        from mpi4py import MPI
        _comm.Allreduce(MPI.IN_PLACE, values, op=MPI.SUM)
    return values
