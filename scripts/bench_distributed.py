"""Data-parallel scaling of the seed MNIST CNN: a training epoch over the 8,000 real
training digits in one process against N processes under MPI, one thread each.

    python scripts/bench_distributed.py --compare [--ranks 2] [--rounds 3] [--epochs 2]
    mpiexec -n 2 python scripts/bench_distributed.py [--epochs 3]     # one run by hand

--compare alternates, round after round, a one-process run (1 thread) and an N-rank
run (mpiexec, 1 thread a rank, as fastcnn.distributed.init sets them), so a busy
machine slows both alike, and reports per configuration the fastest and the median
epoch, their ratio (the speedup), and the share of a step spent in the gradient
allreduce: measured during training (waiting for the slower rank included), and alone
(back-to-back allreduces of the same buffer after a barrier: the transfer itself).
Every rank's batches hold --batch-size digits, so an N-rank epoch takes 1/N the steps.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def options():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--compare", action="store_true", help="alternate 1 process and N ranks")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per run")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--train", type=int, default=8000)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--json", action="store_true", help="one JSON line of results (rank 0)")
    return ap.parse_args()


def worker(args):
    from fastcnn import distributed, init
    from fastcnn.data import MNIST_MEAN, MNIST_STD, DataLoader, load_mnist, normalize
    from fastcnn.model import Callback, Sequential
    from fastcnn.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, SoftmaxCrossEntropy
    from fastcnn.optim import Adam

    distributed.init()
    if distributed.world_size() == 1:
        distributed.set_threads(1)
    sys.path.insert(0, str(REPO / "examples"))
    from mnist_common import default_data_dir

    x, y = load_mnist(args.data or default_data_dir())
    x = normalize(x, MNIST_MEAN, MNIST_STD)[:args.train]
    y = y[:args.train]
    init.seed(0)
    model = Sequential(Conv2d(1, 32, 3, padding=1), ReLU(), MaxPool2d(2),
                       Conv2d(32, 64, 3, padding=1), ReLU(), MaxPool2d(2),
                       Flatten(), Linear(3136, 10))
    model.compile(Adam(model.parameters(), lr=1e-3), SoftmaxCrossEntropy())

    class Timer(Callback):
        """Per epoch: training time, steps, and seconds in the gradient allreduce."""

        def __init__(self):
            self.epochs = []

        def on_epoch_begin(self, epoch):
            p = self.model.parallel
            self.before = (self.model.optimizer.steps, p.allreduce_seconds if p else 0.0,
                           time.process_time())

        def on_epoch_end(self, epoch, logs):
            p = self.model.parallel
            steps = self.model.optimizer.steps - self.before[0]
            reduce = (p.allreduce_seconds if p else 0.0) - self.before[1]
            cpu = time.process_time() - self.before[2]
            self.epochs.append({"time": logs["time"], "steps": steps, "allreduce": reduce,
                                "cpu": cpu})

    loader = DataLoader((x, y), batch_size=args.batch_size, shuffle=True, seed=0)
    timer = Timer()
    # Epoch 0 warms up (buffers, BLAS, page faults) and is not counted.
    model.fit(loader, epochs=args.epochs + 1, verbose=0, distributed=True, callbacks=[timer])
    epochs = timer.epochs[1:]

    alone = None
    comm = distributed.comm()
    if comm is not None:    # the transfer alone: the gradient bucket, after a barrier
        from mpi4py import MPI
        buffer = np.ones(model.num_params(), np.float32)
        times = []
        for _ in range(50):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            times.append(time.perf_counter() - start)
        alone = statistics.median(times)
    from threadpoolctl import threadpool_info
    threads = sorted({(i["internal_api"], i["num_threads"]) for i in threadpool_info()})
    if comm is not None:    # the slowest rank's CPU time: the epoch's work on one core
        for e, theirs in zip(epochs, zip(*comm.allgather([e["cpu"] for e in epochs]))):
            e["cpu"] = max(theirs)
    result = {"ranks": distributed.world_size(), "epochs": epochs, "allreduce_alone": alone,
              "params": model.num_params(), "threads": threads}
    if distributed.is_main():
        print(json.dumps(result) if args.json else result, flush=True)


def run(command):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def compare(args):
    me = [sys.executable, str(Path(__file__).resolve()), "--json", "--epochs",
          str(args.epochs), "--batch-size", str(args.batch_size), "--train", str(args.train)]
    if args.data:
        me += ["--data", str(args.data)]
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    if not os.path.exists(mpiexec):
        mpiexec = shutil.which("mpiexec")
    runs = {1: [], args.ranks: []}
    alone = []
    for r in range(args.rounds):
        for ranks in runs:
            command = me if ranks == 1 else [mpiexec, "-n", str(ranks)] + me
            result = run(command)
            runs[ranks].extend(result["epochs"])
            if result["allreduce_alone"]:
                alone.append(result["allreduce_alone"])
            times = ", ".join(f"{e['time']:.2f}" for e in result["epochs"])
            print(f"round {r + 1}, {ranks} rank(s): epochs {times} s (load average "
                  f"{os.getloadavg()[0]:.1f}, threads {result['threads']})", flush=True)
    fastest = {k: min(e["time"] for e in v) for k, v in runs.items()}
    median = {k: statistics.median(e["time"] for e in v) for k, v in runs.items()}
    n = args.ranks
    print(f"\nseed CNN, {args.train:,} digits, batches of {args.batch_size} a rank, 1 thread a "
          f"process, {args.rounds} rounds x {args.epochs} epochs")
    for k in runs:
        steps = runs[k][0]["steps"]
        print(f"  {k} rank(s): epoch fastest {fastest[k]:.2f} s, median {median[k]:.2f} s "
              f"({steps} steps a rank)")
    print(f"  speedup {n} ranks / 1: fastest {fastest[1] / fastest[n]:.2f}x, median "
          f"{median[1] / median[n]:.2f}x")
    cpu = {k: min(e["cpu"] for e in v) for k, v in runs.items()}
    print(f"  CPU time of an epoch (the slowest rank's, fastest epoch): 1 rank {cpu[1]:.2f} s, "
          f"{n} ranks {cpu[n]:.2f} s: {cpu[1] / cpu[n]:.2f}x less work a process")
    shares = sorted(e["allreduce"] / e["time"] for e in runs[n])
    step = min(e["time"] / e["steps"] for e in runs[n])
    print(f"  allreduce in training (waiting for the slower rank included): "
          f"{100 * shares[0]:.1f}% .. {100 * shares[-1]:.1f}% of the epoch, median "
          f"{100 * statistics.median(shares):.1f}%")
    alone = statistics.median(alone)
    print(f"  allreduce alone ({result['params']:,} float32, median): {1e3 * alone:.3f} ms = "
          f"{100 * alone / step:.2f}% of the fastest step ({1e3 * step:.1f} ms)")


if __name__ == "__main__":
    arguments = options()
    compare(arguments) if arguments.compare else worker(arguments)
