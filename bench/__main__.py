"""fastcnn-bench: time every kernel against the reference, NumPy and PyTorch in one run.

    fastcnn-bench --quick                    # a few minutes; writes results.json, speedups.png
    fastcnn-bench --out full.json --plot full.png
    fastcnn-bench --only conv2d,matmul --threads 1
    fastcnn-bench --only seed_cnn --synthetic   # the training cases on random images
    fastcnn-bench --device cuda              # fastcnn's cuda backend against PyTorch CUDA
    fastcnn-bench --profile-step             # one training step, layer by layer
    fastcnn-bench --readme README.md         # the full run, written into the README
"""

import argparse
import dataclasses
import json
import sys
import time

from tqdm import tqdm

from . import cases, impls, memory, report, runner, threads, training

# Host memory only (GPU memory is not measured); --quick leaves NumPy out.
MEMORY_OF = ("fastcnn-cpu", "torch-cpu", "numpy")


def parse(argv):
    p = argparse.ArgumentParser(
        prog="fastcnn-bench", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--quick", action="store_true",
                   help="the short run: fewer timed calls, no 4096^3 matmul")
    p.add_argument("--only", type=lambda s: s.split(","), default=None, metavar="NAMES",
                   help="comma-separated substrings of case names (see --list)")
    p.add_argument("--threads", type=int, default=threads.available_cores(),
                   help="threads for every implementation (default: all cores, here %(default)s)")
    p.add_argument("--device", choices=("all", "cpu", "cuda"), default="all",
                   help="which implementations to run (default: all that are available)")
    p.add_argument("--out", metavar="JSON",
                   help="write machine info and every sample here (default: results.json; "
                        "none with --tiny or --load)")
    p.add_argument("--plot", metavar="PNG",
                   help="draw the speedups as a bar chart here (default: speedups.png; "
                        "none with --tiny or --load)")
    p.add_argument("--readme", metavar="MD",
                   help="rewrite this README's results section (between the bench markers)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the peak-memory measurements (one process per implementation)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--tiny", action="store_true",
                   help="every case on tiny shapes, each timed once (tests the suite itself)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--synthetic", action="store_true",
                   help="train the seed CNN on random images, not the real MNIST digits "
                        "(found in FASTCNN_MNIST_DIR or ../shared/data/mnist)")
    p.add_argument("--profile-step", action="store_true",
                   help="time each part of one fastcnn cpu training step of the seed CNN "
                        "(every layer's forward and backward, loss, optimizer) and exit")
    p.add_argument("--load", metavar="JSON",
                   help="run nothing: show a saved --out file again (table, --plot, --readme)")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be at least 1")
    if not (args.tiny or args.load):   # a real run always leaves its numbers behind
        args.out = args.out or "results.json"
        args.plot = args.plot or "speedups.png"
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    chosen = cases.with_ceiling(cases.select(quick=args.quick, only=args.only, tiny=args.tiny),
                                args.quick, args.tiny)
    if args.list:
        for case in cases.select(quick=None, only=args.only, tiny=args.tiny):
            only = "" if case.quick and case.full else "  (full only)" if case.full \
                else "  (--quick only)"
            print(f"{case.name:40s} {case.describe}{only}")
        return 0
    if args.load:
        with open(args.load) as f:
            return _report(json.load(f), args)
    if not chosen and not args.profile_step:
        print("no case matches --only " + ",".join(args.only), file=sys.stderr)
        return 2

    started = time.perf_counter()
    restore_threads = threads.set_all(args.threads)
    try:
        if args.profile_step:
            return _profile_step(args)
        return _run(args, argv, chosen, started)
    finally:
        restore_threads()


def _digits(args, chosen):
    """The folder of the real digits for the training cases, or None for random images
    (--synthetic, --tiny, or no digits found: then with a note saying so)."""
    if args.synthetic or args.tiny or not any(c.trains for c in chosen):
        return None
    found = training.find_mnist()
    if found is None:
        print("note: the real MNIST digits are not in FASTCNN_MNIST_DIR or "
              "../shared/data/mnist: the training cases train on random images of the same "
              "shape (as with --synthetic)", file=sys.stderr)
    return found


def _profile_step(args):
    steps = 30
    parts = training.profile_step(steps, _digits(args, [cases.find("seed_cnn train_step")]),
                                  args.seed)
    total = sum(parts.values())
    print(f"One fastcnn cpu training step of the seed CNN (batch 100, Adam), part by part: "
          f"the fastest of {steps} steps, {args.threads} threads; sum {total * 1e3:.1f} ms")
    print(report.profile_table(parts))
    return 0


def _busy_after():
    runner.settle()  # our own idle pools are not "other processes"
    return report.busy_cores()


def _run(args, argv, chosen, started):
    busy_before = None if args.tiny else report.busy_cores()
    if busy_before and busy_before > 0.25:
        print(f"warning: other processes keep {busy_before} cores busy; the timings will be "
              "noisy", file=sys.stderr)
    budget = runner.ONCE if args.tiny else runner.QUICK if args.quick else runner.FULL
    ready, missing = [], {}
    for impl in impls.all_implementations():
        if args.device != "all" and impl.device != args.device:
            continue
        reason = impl.unavailable()
        if reason:
            missing[impl.name] = reason
            print(f"not running {impl.name}: {reason}", file=sys.stderr)
        else:
            ready.append(impl)
    if not ready:
        print(f"no implementation can run here for --device {args.device}", file=sys.stderr)
        return 2
    memory_of = [] if args.no_memory else [
        i.name for i in ready if i.name in MEMORY_OF[:2 if args.quick else 3]]
    memory_cases = [c.name for c in chosen if c.memory]
    bar = tqdm(total=len(chosen) * len(ready) * (1 + budget.rounds)
               + (len(memory_of) if memory_cases else 0),
               unit="step", file=sys.stderr, dynamic_ncols=True, leave=False)
    started_steps = []

    def step(label):
        """Count the step before this one as done, show this one."""
        if started_steps:
            bar.update(1)
        started_steps.append(label)
        bar.set_description(label[:60])

    mnist = _digits(args, chosen)
    results = []
    for case in chosen:
        result = runner.run_case(case, ready, budget, seed=args.seed, on_step=step,
                                 mnist=mnist)
        results.append(runner.add_rates_and_speedups(result))
    ceiling = runner.add_sgemm_shares(results, cases.CEILING[args.quick])
    by_name = {r["name"]: r for r in results}
    for name in memory_of if memory_cases else []:
        step(f"peak memory of {name}")
        valid = [c for c in memory_cases if by_name[c]["results"][name]["status"] == "ok"]
        for case, peak in (memory.peak_memory(name, valid, args.threads, args.tiny)
                           if valid else {}).items():
            by_name[case].setdefault("memory", {})[name] = peak
    bar.update(1)
    bar.close()

    run = {"format": "fastcnn-bench 1", "command": "fastcnn-bench " + " ".join(argv),
           "mode": "tiny" if args.tiny else "quick" if args.quick else "full",
           "machine": report.machine_info(args.threads),
           "budget": dataclasses.asdict(budget), "rtol": runner.RTOL,
           "implementations": {i.name: i.label for i in ready}, "not_run": missing,
           "cases": results, "sgemm_ceiling": ceiling,
           "wall_seconds": time.perf_counter() - started,
           "mnist": None if mnist is None else str(mnist),
           "busy_cores": {"before": busy_before, "after": None if args.tiny else _busy_after()}}
    return _report(run, args)


def _report(run, args):
    """The table on stdout, then the files asked for; 1 if any result was wrong."""
    print(report.table(run))
    busy = run["busy_cores"]
    print(f"\n{len(run['cases'])} cases in {run['wall_seconds']:.0f} s, "
          f"{run['machine']['threads']} threads, {run['machine']['cpu']}"
          + ("." if busy["before"] is None else
             f"; other processes kept {busy['before']} cores busy before the run, "
             f"{busy['after']} after."))
    if args.out:
        report.write_json(run, args.out)
        print(f"wrote {args.out}")
    if args.plot:
        try:
            report.plot(run, args.plot)
            print(f"wrote {args.plot}")
        except ImportError:
            print("--plot needs matplotlib (pip install 'fastcnn[bench]')", file=sys.stderr)
    if args.readme:
        report.update_readme(run, args.readme)
        print(f"updated the results in {args.readme}")
    bad = [(c["name"], n) for c in run["cases"] for n, r in c["results"].items()
           if r["status"] in ("wrong", "error")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
