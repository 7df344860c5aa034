"""Run a case on every implementation: validate once, warm up, time, compare.

The pattern of llm.c's dev/cuda: one oracle result per case, every version's
output checked against it before it is timed (a benchmark never reports a
fast wrong answer), then a warm-up call and repeated timed calls until both a
minimum count and a time budget are reached, in rounds that give every
implementation a turn.

The oracle is fastcnn's reference backend in float64 on the same float32
values where the case is small enough to time the reference; on the large
shapes (where the reference takes seconds) it is fastcnn's cpu backend in
float64, which the test suite checks against the reference.

A training case is checked the same way: every implementation starts from the
same weights and batches, and its first call (the loss and every gradient of
one step, or an epoch's mean loss) must match the float64 oracle, fastcnn's
layers on the cpu backend (they do not run on the reference backend). Its
later calls train on from where the last one stopped.
"""

import dataclasses
import gc
import time

import numpy as np

from .cases import CEILING_STEPS, TARGETS
from .impls import Fastcnn

RTOL = 1e-3  # float32 results vs the float64 oracle, relative to the largest |value|
CEILING_OF = ("fastcnn-cpu", "numpy", "torch-cpu")  # whose matmul rate can be the ceiling


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long to time each implementation on each case."""
    seconds: float = 2.0   # keep timing until this much time is spent...
    min_calls: int = 6     # ...and at least this many calls are timed,
    max_calls: int = 600   # but never more than this many,
    max_seconds: float = 60.0  # nor, once one call is timed, more than this much time.
    warmup: int = 1        # untimed calls after the validation call
    settle: bool = True    # let the last implementation's thread pools go idle first
    rounds: int = 3        # the timed calls are split into this many turns per implementation

    def per_round(self):
        return dataclasses.replace(self, seconds=self.seconds / self.rounds, rounds=1,
                                   max_seconds=self.max_seconds / self.rounds,
                                   min_calls=-(-self.min_calls // self.rounds),
                                   max_calls=-(-self.max_calls // self.rounds))


# --quick: the validation call is the warm-up; a call slower than a second is timed once.
QUICK = Budget(seconds=0.2, min_calls=3, max_calls=50, max_seconds=1.0, warmup=0, rounds=1)
FULL = Budget()
ONCE = Budget(seconds=0.0, min_calls=1, max_calls=1, warmup=0, settle=False, rounds=1)  # tests


def make_call(impl, case, arrays):
    """The call to time: impl's step on the arrays, moved to its device first. A training
    case's step gets the host arrays, builds its model from them once (untimed) and
    returns the call that trains it."""
    step = getattr(impl, case.step)
    if case.trains:
        return step(**arrays, **case.params)
    args = {k: impl.put(v) for k, v in arrays.items()}
    return lambda: step(**args, **case.params)


def oracle(case, arrays):
    """(name, result): the case's step in float64, by the reference or by fastcnn cpu."""
    backend = "reference" if case.reference else "cpu"
    wide = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in arrays.items()}
    impl = Fastcnn(backend)
    result = impl.get(make_call(impl, case, wide)())
    return f"{impl.name} (float64)", _tuple(result)


def _tuple(result):
    return result if isinstance(result, tuple) else (result,)


def relative_error(got, want):
    """The largest |got - want| of any output over that output's largest |want|
    (integer outputs, like pooling indices, must match exactly: 0 or inf)."""
    got = _tuple(got)
    if len(got) != len(want):
        return np.inf
    worst = 0.0
    for g, w in zip(got, want):
        g = np.asarray(g)
        if g.shape != w.shape:
            return np.inf
        if w.dtype.kind in "iu":
            worst = max(worst, 0.0 if np.array_equal(g, w) else np.inf)
            continue
        err = np.max(np.abs(g.astype(np.float64) - w), initial=0.0)
        if np.isnan(err):
            return np.inf
        worst = max(worst, err / max(np.max(np.abs(w), initial=0.0), 1e-30))
    return worst


def work_bytes(arrays, want):
    """Bytes of every input and output array, each read or written once."""
    return sum(a.nbytes for a in arrays.values()) + sum(w.astype(np.float32).nbytes
                                                        if w.dtype == np.float64 else w.nbytes
                                                        for w in want)


def settle(timeout=1.0, quantum=0.01):
    """Wait until no thread of this process burns CPU any more.

    Thread pools keep spinning after their last job (OpenBLAS's for about 0.1 s,
    OpenMP's for a few ms) in case more work comes. On a machine with few cores
    the pool of the implementation just timed would steal cores from the next
    one, so each implementation starts once the others have gone to sleep."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        start = time.process_time()  # CPU time of every thread of the process
        time.sleep(quantum)
        if time.process_time() - start < 0.1 * quantum:
            return


def time_calls(impl, call, budget, warmup=0):
    """Seconds of each timed call, after the warm-up calls; garbage collection off."""
    for _ in range(warmup):
        call()
    samples, spent = [], 0.0
    enabled = gc.isenabled()
    gc.disable()
    try:
        while len(samples) < budget.max_calls and (len(samples) < budget.min_calls
                                                   or spent < budget.seconds):
            if samples and spent >= budget.max_seconds:
                break
            samples.append(impl.seconds(call))
            spent += samples[-1]
    finally:
        if enabled:
            gc.enable()
    return samples


def run_case(case, impls, budget, seed=0, on_step=None, mnist=None):
    """The case on every implementation: a dict with the oracle, the work and, per
    implementation, its status, samples and statistics (speedups come later).
    mnist: the folder of the real digits for the training cases (None: random images).

    The timed calls come in budget.rounds rounds, each implementation taking its
    turn in every round, so a machine that gets busier or quieter during the case
    slows every implementation alike instead of whichever ran at the time."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    arrays = case.inputs(rng, mnist)
    oracle_name, want = oracle(case, arrays)
    oracle_seconds = time.perf_counter() - started
    describe = case.describe
    if case.trains:
        describe += ", MNIST digits" if mnist is not None else ", random images"
    out = {"name": case.name, "step": case.step, "describe": describe,
           "arrays": {k: list(v.shape) for k, v in arrays.items()},
           "params": {k: list(v) if isinstance(v, tuple) else v for k, v in case.params.items()},
           "oracle": oracle_name, "results": {}}
    if case.flops:
        out["flops"] = case.flops
    elif case.images:
        out["images"] = case.images
    else:
        out["bytes"] = work_bytes(arrays, want)
    calls = {}
    for impl in impls:
        if on_step:
            on_step(f"{case.name}: checking {impl.name}")
        out["results"][impl.name], calls[impl.name] = _validate(case, impl, arrays, want,
                                                                budget)
    per_round = budget.per_round()
    for round_ in range(budget.rounds):
        for impl in impls:
            if on_step:
                on_step(f"{case.name}: timing {impl.name}")
            r = out["results"][impl.name]
            if r["status"] != "ok":
                continue
            try:
                if budget.settle:
                    settle()
                r["samples"] += time_calls(impl, calls[impl.name], per_round,
                                           warmup=budget.warmup if round_ == 0 else 0)
            except Exception as e:  # noqa: BLE001 -- report it in the table, carry on
                out["results"][impl.name] = {"status": "error",
                                             "reason": f"{type(e).__name__}: {e}"}
    for impl in impls:
        r = out["results"][impl.name]
        if r["status"] == "ok":
            r.update(median=float(np.median(r["samples"])), min=float(np.min(r["samples"])),
                     max=float(np.max(r["samples"])))
    out["seconds"] = {"inputs_and_oracle": oracle_seconds,
                      "total": time.perf_counter() - started}
    return out


def _validate(case, impl, arrays, want, budget):
    """(result dict, the call to time): the implementation's first call, checked."""
    if impl.name == "reference" and not case.reference:
        why = ("fastcnn's layers run on the cpu and cuda backends only" if case.trains
               else "the reference is timed on small shapes only")
        return {"status": "skipped", "reason": why}, None
    if not hasattr(impl, case.step):   # e.g. ONNX Runtime: inference only
        return {"status": "skipped", "reason": f"{impl.name} has no {case.step}"}, None
    try:
        call = make_call(impl, case, arrays)
        if budget.settle:
            settle()
        error = relative_error(impl.get(call()), want)
    except NotImplementedError as e:
        return {"status": "n/a", "reason": str(e)}, None
    except Exception as e:  # noqa: BLE001 -- report it in the table, carry on with the rest
        return {"status": "error", "reason": f"{type(e).__name__}: {e}"}, None
    if not error <= RTOL:
        return {"status": "wrong", "relative_error": float(error),
                "reason": f"result differs from the oracle by {error:.3g} (relative) "
                          f"> {RTOL}: not timed"}, None
    return {"status": "ok", "relative_error": float(error), "samples": []}, call


def add_rates_and_speedups(result):
    """Per implementation: GFLOP/s, images/s or GB/s, and speedups (baseline time / its
    time) over PyTorch on the same device, NumPy, the reference and ONNX Runtime; then the
    case's targets, each with its measured speedup (or rate) and whether it is met."""
    results = result["results"]
    for name, r in results.items():
        if r["status"] != "ok":
            continue
        if "flops" in result:
            r["gflops"] = result["flops"] / r["median"] / 1e9
        elif "images" in result:
            r["images_per_s"] = result["images"] / r["median"]
        else:
            r["gbytes_per_s"] = result["bytes"] / r["median"] / 1e9
        device = "cuda" if name.endswith("cuda") else "cpu"
        r["speedup"] = {}
        for key, baseline in (("torch", f"torch-{device}"), ("numpy", "numpy"),
                              ("reference", "reference"), ("onnxruntime", "onnxruntime")):
            b = results.get(baseline, {})
            if b.get("status") == "ok" and baseline != name:
                r["speedup"][key] = b["median"] / r["median"]
    result["targets"] = []
    for t in TARGETS.get(result["name"], []):
        r = results.get(t.impl, {})
        measured = r.get("gflops") if t.baseline == "gflops" else r.get("speedup", {}).get(
            t.baseline)
        if t.impl in results:
            result["targets"].append({
                "implementation": t.impl, "baseline": t.baseline, "goal": t.goal,
                "speedup_needed": t.speedup, "speedup": measured,
                "met": None if measured is None else measured >= t.speedup})
    return result


def add_sgemm_shares(results, ceiling_case):
    """The sgemm ceiling of this run, {"case", "implementation", "gflops"}: the best GFLOP/s
    of the CPU implementations on the matmul case called ceiling_case (None if it did not
    run). Every CPU result of a conv case gets its rate as a share of it: "sgemm_share", in
    percent."""
    rates = {name: r["gflops"] for c in results if c["name"] == ceiling_case
             for name, r in c["results"].items() if "gflops" in r and name in CEILING_OF}
    if not rates:
        return None
    best = max(rates, key=rates.get)
    for case in results:
        for name, r in case["results"].items():
            if case["step"] in CEILING_STEPS and "gflops" in r and not name.endswith("cuda"):
                r["sgemm_share"] = 100 * r["gflops"] / rates[best]
    return {"case": ceiling_case, "implementation": best, "gflops": rates[best]}
