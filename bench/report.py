"""What a run leaves behind: the machine it ran on, the table, the JSON, the plot, and
the README section."""

import datetime
import json
import os
import platform
import re
import sys
import time

from . import threads


# ---------------------------------------------------------------- the machine


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module):
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def _gpu():
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        from numba import config, cuda
        if not config.ENABLE_CUDASIM and cuda.is_available():
            name = cuda.get_current_device().name
            return name.decode() if isinstance(name, bytes) else name
    except ImportError:
        pass
    return None


def busy_cores(seconds=0.5):
    """How many cores other processes keep busy, measured while this one sleeps
    (Linux's /proc/stat; None elsewhere). Timings taken on a busy machine are noisy."""
    def busy():
        with open("/proc/stat") as f:
            user, nice, system, idle, iowait, irq, softirq, steal = map(
                int, f.readline().split()[1:9])
        return user + nice + system + irq + softirq + steal, user + nice + system + idle \
            + iowait + irq + softirq + steal
    try:
        b0, t0 = busy()
        time.sleep(seconds)
        b1, t1 = busy()
    except (OSError, ValueError):
        return None
    return round((os.cpu_count() or 1) * (b1 - b0) / max(t1 - t0, 1), 2)


def machine_info(n_threads):
    from threadpoolctl import threadpool_info
    blas = sorted({f"{i['internal_api']} {i['version']}" for i in threadpool_info()
                   if i.get("user_api") == "blas"})
    return {
        "cpu": _cpu_model(), "cores": threads.available_cores(), "threads": n_threads,
        "gpu": _gpu(), "platform": platform.platform(), "python": platform.python_version(),
        "numpy": _version("numpy"), "scipy": _version("scipy"), "fastcnn": _version("fastcnn"),
        "torch": _version("torch"), "blas": blas,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------- numbers for people


def _time(seconds):
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def _rate(r):
    if "gflops" in r:
        return f"{r['gflops']:.1f} GFLOP/s"
    if "gbytes_per_s" in r:
        return f"{r['gbytes_per_s']:.2f} GB/s"
    if "images_per_s" in r:
        return f"{r['images_per_s']:,.0f} images/s"
    return ""


def _share(r):
    """A conv result's rate as a share of the run's sgemm ceiling (empty for the rest)."""
    return f"{r['sgemm_share']:.0f}%" if "sgemm_share" in r else ""


def ceiling_note(run):
    """The run's sgemm ceiling in a sentence (empty when it was not measured)."""
    c = run.get("sgemm_ceiling")
    if not c:
        return ""
    return (f"The sgemm ceiling of this run: {c['gflops']:.1f} GFLOP/s ({c['implementation']}, "
            f"{c['case']}, the best CPU rate there); \"of sgemm\" is a conv case's CPU rate "
            "as a share of it (the rate counts direct convolution's operations: above 100%, "
            "the kernel does fewer, as Winograd's do).")


def _speedup(r, key):
    value = r.get("speedup", {}).get(key)
    return "" if value is None else f"{value:.2f}x"


def _mib(n):
    return f"{n / 2 ** 20:.1f} MiB"


def _table(header, rows, align):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if a == "<" else str(c).rjust(w)
                         for c, w, a in zip(cells, widths, align)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def table(run):
    """Every case and implementation: times, rate, speedups (baseline time / this time)."""
    header = ["case", "implementation", "calls", "median", "min", "max", "rate", "of sgemm",
              "vs torch", "vs ort", "vs numpy", "vs ref"]
    rows, notes = [], []
    for case in run["cases"]:
        first = True
        for name, r in case["results"].items():
            label = case["name"] if first else ""
            first = False
            if r["status"] != "ok":
                if r["status"] != "skipped":
                    rows.append([label, name, "", r["status"].upper()] + [""] * 8)
                    notes.append(f"{case['name']}, {name}: {r['reason']}")
                continue
            rows.append([label, name, len(r["samples"]), _time(r["median"]), _time(r["min"]),
                         _time(r["max"]),
                         _rate(r), _share(r), _speedup(r, "torch"),
                         _speedup(r, "onnxruntime"), _speedup(r, "numpy"),
                         _speedup(r, "reference")])
    text = _table(header, rows, "<<>>>>>>>>>>")
    ceiling = ceiling_note(run)
    if ceiling:
        text = ceiling + "\n\n" + text
    if notes:
        text += "\n\n" + "\n".join(notes)
    targets = targets_table(run) if run["mode"] != "tiny" else ""  # tiny shapes say nothing
    if targets:
        text += "\n\nSpeed targets from the project's issues:\n" + targets
    memory = memory_table(run)
    if memory:
        text += "\n\nPeak memory of one forward+backward call (resident, measured in a fresh " \
                "process):\n" + memory
    note = data_note(run)
    return text + ("\n\nvs X: X's median time / this one's (above 1: faster than X); "
                   "torch is PyTorch on the same device, ort ONNX Runtime (CPU)."
                   + (" " + note if note else ""))


def targets_table(run, markdown=False):
    rows = []
    for case in run["cases"]:
        for t in case.get("targets", []):
            if t["baseline"] == "gflops":   # a rate, not a speedup
                needs = f"{t['speedup_needed']:.0f} GFLOP/s"
                measured = "" if t["speedup"] is None else f"{t['speedup']:.1f} GFLOP/s"
            else:
                needs = f"{t['speedup_needed']:.2f}x vs {t['baseline']}"
                measured = "" if t["speedup"] is None else f"{t['speedup']:.2f}x"
            verdict = {True: "met", False: "NOT MET", None: "not measured"}[t["met"]]
            rows.append([case["name"], t["implementation"], t["goal"], needs, measured,
                         verdict])
    if not rows:
        return ""
    header = ["case", "implementation", "goal", "needs", "measured", ""]
    return _markdown(header, rows) if markdown else _table(header, rows, "<<<>><")


def memory_table(run, markdown=False):
    names = []
    for case in run["cases"]:
        names += [n for n in case.get("memory", {}) if n not in names]
    rows = []
    for case in run["cases"]:
        if not case.get("memory"):
            continue
        cells = []
        for name in names:
            m = case["memory"].get(name, {})
            cells.append(_mib(m["peak_bytes"]) if "peak_bytes" in m else m.get("error", ""))
        rows.append([case["name"]] + cells)
    if not rows:
        return ""
    if markdown:
        return _markdown(["case"] + names, rows)
    return _table(["case"] + names, rows, "<" + ">" * len(names))


def profile_table(parts):
    """The parts of a training step ({part: seconds}), each with its share of the sum."""
    total = sum(parts.values())
    rows = [[part, f"{seconds * 1e3:.2f} ms", f"{100 * seconds / total:.1f} %"]
            for part, seconds in parts.items()]
    return _table(["part", "time", "share"], rows, "<>>")


def data_note(run):
    """Which images the training cases trained on (empty when there was none)."""
    if not any(c.get("images") for c in run["cases"]):
        return ""
    if run.get("mnist"):
        # Relative to the repository's root, as the README is read from there.
        folder = os.path.relpath(run["mnist"]) if os.path.isabs(run["mnist"]) else run["mnist"]
        return f"The training cases train on the real MNIST digits in {folder}."
    return "The training cases train on random images (--synthetic, or no digits found)."


def _markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def summary_markdown(run):
    """One row per case: fastcnn's time and rate, and its speedups (the README section)."""
    rows = []
    for case in run["cases"]:
        for name in ("fastcnn-cpu", "fastcnn-cuda"):
            r = case["results"].get(name)
            if r is None or r["status"] == "skipped":
                continue
            if r["status"] != "ok":
                rows.append([f"`{case['name']}`", case["describe"], name,
                             r["status"].upper()] + [""] * 6)
                continue
            rows.append([f"`{case['name']}`", case["describe"], name, _time(r["median"]),
                         _rate(r), _share(r), _speedup(r, "torch"),
                         _speedup(r, "onnxruntime"), _speedup(r, "numpy"),
                         _speedup(r, "reference")])
    header = ["case", "shapes", "fastcnn", "median", "rate", "of sgemm", "vs PyTorch",
              "vs ONNX Runtime", "vs NumPy", "vs reference"]
    return _markdown(header, rows)


# ---------------------------------------------------------------- files


def write_json(run, path):
    with open(path, "w") as f:
        json.dump(run, f, indent=1)
        f.write("\n")


def plot(run, path):
    """A bar chart of fastcnn's speedups over PyTorch and NumPy per case, with the 1.0
    line (log scale: 2x faster and 2x slower are the same distance from it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [("fastcnn-cpu", "torch", "vs PyTorch cpu"), ("fastcnn-cpu", "numpy", "vs NumPy"),
              ("fastcnn-cuda", "torch", "cuda vs PyTorch cuda")]
    names = [c["name"] for c in run["cases"]]
    values = {label: [c["results"].get(impl, {}).get("speedup", {}).get(key)
                      for c in run["cases"]] for impl, key, label in series}
    values = {k: v for k, v in values.items() if any(x is not None for x in v)}
    height = 0.8 / max(len(values), 1)
    fig, ax = plt.subplots(figsize=(9, 1.5 + 0.3 * len(names) * max(len(values), 1) ** 0.5))
    for i, (label, vals) in enumerate(values.items()):
        ys = [n + (i - (len(values) - 1) / 2) * height for n in range(len(names))]
        bars = [(y, v) for y, v in zip(ys, vals) if v is not None]
        # Bars grow from 1.0, to the right where fastcnn is faster, to the left where slower.
        ax.barh([y for y, _ in bars], [v - 1 for _, v in bars], left=1, height=height,
                label=f"fastcnn {label}")
        for y, v in bars:
            ax.text(v, y, f" {v:.2g}x ", va="center",
                    ha="left" if v >= 1 else "right", fontsize=6)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    every = [v for vals in values.values() for v in vals if v is not None]
    if every:
        ax.set_xlim(min(every + [1]) / 2, max(every + [1]) * 2)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("speedup (other's median time / fastcnn's; right of the line: fastcnn faster)")
    m = run["machine"]
    ax.set_title(f"fastcnn {m['fastcnn']} on {m['cpu']}, {m['threads']} threads "
                 f"({run['mode']})", fontsize=9)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def readme_section(run):
    m = run["machine"]
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    lines = [
        f"Measured {m['date'][:10]} by `{run['command']}` on {m['cpu']} "
        f"({m['cores']} cores, {m['threads']} threads{gpu}), Python {m['python']}, "
        f"NumPy {m['numpy']}, PyTorch {m['torch'] or 'not installed'}, "
        f"fastcnn {m['fastcnn']}; whole run {run['wall_seconds']:.0f} s. Median of repeated "
        "calls after a warm-up; \"vs X\" is X's median time over fastcnn's (above 1: "
        "fastcnn is faster); every result was checked against a float64 oracle before "
        "timing."]
    for note in (data_note(run), ceiling_note(run)):
        if note:
            lines[-1] += " " + note
    busy = run.get("busy_cores", {}).get("before")
    if busy and busy > 0.25:
        lines[-1] += (f" Other processes kept {busy} of the {m['cores']} cores busy when the "
                      "run started, so these numbers are noisier than on an idle machine.")
    lines += ["", summary_markdown(run)]
    targets = targets_table(run, markdown=True)
    if targets:
        lines += ["", "Speed targets from the project's issues (speedup = the other's time / "
                  "fastcnn's, or a rate):", "", targets]
    memory = memory_table(run, markdown=True)
    if memory:
        lines += ["", "Peak resident memory of one forward+backward call (fresh process per "
                  "implementation):", "", memory]
    return "\n".join(lines)


def update_readme(run, path):
    """Replace the text between the bench markers in the README with this run's section."""
    with open(path) as f:
        text = f.read()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        sys.exit(f"{path} has no {START} ... {END} markers to write the results between")
    section = f"{START}\n{readme_section(run)}\n{END}"
    with open(path, "w") as f:
        f.write(pattern.sub(lambda _: section, text))
