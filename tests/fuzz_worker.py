"""The fuzz suite's child process: runs batches of generated cases, one JSON line each.

    python tests/fuzz_worker.py PLAN.json              what test_fuzz.py runs
    python tests/fuzz_worker.py GROUP TARGET SEED:N:I  replay one case, verbosely

A batch is one hypothesis run (@seed(SEED), max_examples=N) drawing cases for one
target; a case's seed is SEED:N:I, I its index in that run. Before running a case
the worker writes {"start": ...} with a one-line repr of the call, after it its
outcome; a crash or a hang (faulthandler ends the worker after CASE_TIMEOUT seconds,
with the traceback) leaves a start without an outcome, and test_fuzz.py reports that
case and starts a new worker at the next one. A case is run on the reference backend
and on cpu (and on cuda, for a share), and the results compared.
"""

import faulthandler
import json
import os
import re
import sys
import tempfile
import traceback
import warnings

if os.environ.get("FASTCNN_TEST_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    sys.setswitchinterval(5e-4)   # the simulator's threads poll each other (see conftest)

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fuzz_cases  # noqa: E402
import fuzz_targets  # noqa: E402
from fuzz_values import short  # noqa: E402

CASE_TIMEOUT = float(os.environ.get("FUZZ_CASE_TIMEOUT", "60"))
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
TOLERANCE = {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 1e-4,
             np.dtype(np.float64): 1e-9}
try:
    import fastcnn.backends.cuda  # noqa: F401
    CUDA = True
except ImportError:
    CUDA = False


def make_case(group, target, draw):
    if group == "functional":
        return fuzz_cases.op_case(draw, target)
    return fuzz_targets.CASES[group](draw, target)


# ---------------------------------------------------------------- running and judging


def allowed(group, error, message):
    """The exceptions bad input may raise: ValueError, TypeError, and the documented ones."""
    if isinstance(error, (ValueError, TypeError)):
        return True
    if isinstance(error, (FileNotFoundError, IsADirectoryError)):   # a path that is no file
        return True
    if isinstance(error, RuntimeError) and re.search(r"needs a \w+ pass first", message):
        return True   # backward before forward
    return isinstance(error, MemoryError) and group != "model_load"   # a refused huge output


def attempt(case, backend, folder):
    """('ok', state) or ('raised', type name, message, allowed)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = case.run(backend, folder)
        return ("ok", host(state))
    except Exception as e:   # noqa: B902 - judged below, whatever it is
        message = str(e).replace(folder, "<dir>") if folder else str(e)
        ok = case.allowed(e) if hasattr(case, "allowed") else allowed(case.group, e, message)
        return ("raised", type(e).__name__, message, ok)


def host(value):
    """A result as NumPy arrays and plain values (device arrays copied back)."""
    if isinstance(value, dict):
        return {k: host(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(host(v) for v in value)
    if hasattr(value, "copy_to_host"):
        return value.copy_to_host()
    if isinstance(value, np.ndarray):
        return np.array(value)
    return value


def differ(want, got, where="result"):
    """Why got is not want (None if it is): shapes, dtypes, NaN where NaN, values."""
    if isinstance(want, dict) and isinstance(got, dict):
        if sorted(want) != sorted(got):
            return f"{where}: keys {sorted(got)} != {sorted(want)}"
        return next((d for k in want if (d := differ(want[k], got[k], f"{where}[{k!r}]"))),
                    None)
    if isinstance(want, (tuple, list)) and isinstance(got, (tuple, list)):
        if len(want) != len(got):
            return f"{where}: {len(got)} items, the reference {len(want)}"
        return next((d for i, (w, g) in enumerate(zip(want, got))
                     if (d := differ(w, g, f"{where}[{i}]"))), None)
    if isinstance(want, np.ndarray) or isinstance(got, np.ndarray) or isinstance(want, float):
        return _differ_arrays(np.asarray(want), np.asarray(got), where,
                              isinstance(want, np.ndarray))
    if type(want) is not type(got) or (want != got and want is not got):
        return f"{where}: {short(got)}, the reference {short(want)}"
    return None


def _differ_arrays(want, got, where, typed):
    if want.shape != got.shape:
        return f"{where}: shape {got.shape}, the reference {want.shape}"
    if typed and want.dtype != got.dtype:
        return f"{where}: dtype {got.dtype}, the reference {want.dtype}"
    if want.dtype.kind not in "fc":
        if want.dtype == object or np.array_equal(want, got):
            return None
        return f"{where}: {int((want != got).sum())} of {want.size} entries differ"
    nan_w, nan_g = np.isnan(want), np.isnan(got)
    if (nan_w != nan_g).any():
        kind = "NaN where the reference is not" if (nan_g & ~nan_w).any() else \
            "a number where the reference has NaN"
        return f"{where}: {int((nan_w != nan_g).sum())} of {want.size} entries: {kind}"
    inf = np.isinf(want) | np.isinf(got)
    if (want[inf] != got[inf]).any():
        return f"{where}: infinities differ from the reference's"
    finite = ~(nan_w | inf)
    w, g = want[finite].astype(np.float64), got[finite].astype(np.float64)
    if not w.size:
        return None
    tol = TOLERANCE.get(want.dtype, 1e-4) if typed else 1e-4
    scale = max(1.0, float(np.abs(w).max()))
    bad = ~(np.abs(w - g) <= tol * (np.abs(w) + scale))
    if bad.any():
        return (f"{where}: {int(bad.sum())} of {want.size} entries off (worst "
                f"{float(np.abs(w - g)[bad].max()):.3g} at scale {scale:.3g})")
    return None


def judge(case, folder, progress=None):
    """The case's outcome: ('ok' | 'clean' | 'fail', failures, error names)."""
    fixed = getattr(case, "args", {}).get("backend") if case.group == "functional" else None
    backends = ["given"] if fixed is not None else list(
        getattr(case, "backends", ("reference", "cpu")))
    if getattr(case, "cuda", False) and CUDA and fixed is None:
        backends.append("cuda")
    runs = {}
    for b in backends:   # the parent learns which run crashed or hung
        if b == "cuda" and _elements(runs["reference"]) > 20000:
            continue   # a valid but large call: too slow on the simulator
        if progress:
            emit(progress, dict(running=b))
        runs[b] = attempt(case, fixed if b == "given" else b, folder)
    failures, errors = [], sorted({r[1] for r in runs.values() if r[0] == "raised"})
    bad = {}   # (error, message): the backends raising it
    for b, r in runs.items():
        if r[0] == "raised" and not r[3]:
            bad.setdefault(r[1:3], []).append(b)
    for (error, message), where in bad.items():
        failures.append(dict(kind="exception", backend="+".join(where), error=error,
                             message=message))
    want = runs.get("reference")
    for b in ("cpu", "cuda"):
        got = runs.get(b)
        if want is None or got is None or failures:
            continue
        if want[0] == "ok" and got[0] == "ok":
            if getattr(case, "compare", True):
                d = differ(want[1], got[1])
                if d:
                    failures.append(dict(kind="mismatch", backend=b, error="", message=d))
        elif want[0] != got[0] and "MemoryError" not in (want[1], got[1]):
            who, other = (got, want) if got[0] == "raised" else (want, got)
            if _documented(case, b, who):
                continue
            failures.append(dict(
                kind="inconsistent", backend=b, error=who[1],
                message=f"{'reference' if who is want else b} raised {who[1]}: {who[2]}; "
                        f"the other accepted the call"))
    try:
        checks = case.checks(runs) if hasattr(case, "checks") else []
    except Exception as e:   # noqa: B902 - a bug of the fuzz suite itself
        checks, failures = [], failures + [dict(kind="generator", backend="", error=type(
            e).__name__, message=f"checking the result: {e}")]
    failures += [dict(kind="mismatch", backend="cpu", error="", message=c) for c in checks]
    outcome = "fail" if failures else ("ok" if any(r[0] == "ok" for r in runs.values())
                                       else "clean")
    return outcome, failures, errors


def _elements(run):
    """How many array elements a run produced (results and arguments)."""
    if run[0] != "ok":
        return 0
    count, todo = 0, [run[1]]
    while todo:
        v = todo.pop()
        if isinstance(v, (tuple, list)):
            todo.extend(v)
        elif isinstance(v, dict):
            todo.extend(v.values())
        elif isinstance(v, np.ndarray):
            count += v.size
    return count


def _documented(case, backend, raised):
    """Differences allowed: on the GPU, softmax_cross_entropy_backward marks bad labels
    with NaN rows and count_correct(into=) does not count them (functional's docstring),
    where the reference raises; and the simulator runs kernels with Python's math, which
    raises on sqrt(-inf) or log(-1) where a GPU (and NumPy) give NaN."""
    if backend != "cuda":
        return False
    if "labels must lie in" in raised[2] and case.target in (
            "softmax_cross_entropy_backward", "count_correct"):
        return True
    return SIMULATOR and raised[1] == "ValueError" and "math domain error" in raised[2]


# ---------------------------------------------------------------- the batches


def run_batch(batch, out, folder, only=None):
    """Run one batch's cases (from batch["skip"] on), writing a line per case to out."""
    index = [0]

    @seed(batch["seed"])
    @settings(max_examples=batch["count"], database=None, phases=[Phase.generate],
              deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
    @given(st.data())
    def cases(data):
        i = index[0]
        index[0] += 1
        if i < batch.get("skip", 0) or (only is not None and i != only):
            try:   # the same draws as when it ran, so the next cases are the same too
                make_case(batch["group"], batch["target"], data.draw)
            except Exception:   # noqa: B902 - reported when it ran
                pass
            return
        case_id = f"{batch['seed']}:{batch['count']}:{i}"
        head = dict(group=batch["group"], target=batch["target"], case=case_id,
                    batch=batch.get("id"))
        try:
            case = make_case(batch["group"], batch["target"], data.draw)
        except Exception as e:   # noqa: B902 - a bug of the fuzz suite itself
            where = "; ".join(f"{os.path.basename(f.filename)}:{f.lineno}"
                              for f in traceback.extract_tb(e.__traceback__)[-3:])
            emit(out, dict(head, outcome="fail", call="(generating the case)", failures=[dict(
                kind="generator", backend="", error=type(e).__name__,
                message=f"{e} (at {where})")]))
            return
        head["call"] = case.describe()
        emit(out, dict(head, start=True))
        faulthandler.dump_traceback_later(CASE_TIMEOUT, exit=True)
        try:
            outcome, failures, errors = judge(case, folder, out)
        finally:
            faulthandler.cancel_dump_traceback_later()
            _restore_standard_fds()
        emit(out, dict(head, outcome=outcome, failures=failures, errors=errors))
        if only is not None:
            print(json.dumps(dict(head, outcome=outcome, failures=failures), indent=1),
                  file=sys.stderr)

    cases()


def emit(out, record):
    out.write(json.dumps(record) + "\n")
    out.flush()


_DEVNULL = None


def _restore_standard_fds():
    """A case may close or reuse fds 0-1 (a path given as an int is a file descriptor)."""
    for fd in (0, 1):
        try:
            os.fstat(fd)
        except OSError:
            os.dup2(_DEVNULL, fd)


def main(argv):
    global _DEVNULL
    out = os.fdopen(os.dup(1), "w")            # the protocol, out of the cases' reach
    err = os.fdopen(os.dup(2), "w")
    _DEVNULL = os.open(os.devnull, os.O_RDWR)
    os.dup2(_DEVNULL, 0)
    os.dup2(_DEVNULL, 1)                       # what cases print goes nowhere
    faulthandler.enable(err)
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":   # a real GPU maps huge address space
        import resource
        limit = int(os.environ.get("FUZZ_MEMORY_LIMIT", str(4 << 30)))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with tempfile.TemporaryDirectory(prefix="fastcnn-fuzz-") as folder:
        if len(argv) == 1:
            with open(argv[0]) as f:
                plan = json.load(f)
            for batch in plan:
                run_batch(batch, out, folder)
                emit(out, dict(batch_done=batch["id"]))
        else:
            group, target, case = argv
            batch_seed, count, i = map(int, case.split(":"))
            run_batch(dict(group=group, target=target, seed=batch_seed, count=count), out,
                      folder, only=i)
    out.close()


if __name__ == "__main__":
    main(sys.argv[1:])
