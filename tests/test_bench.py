"""The benchmark suite itself, on tiny shapes: every case runs on every implementation
present, results are validated, the JSON, plot and README section come out. No test
looks at a time."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from fastcnn.bench import __main__ as bench_main
from fastcnn.bench import cases, impls, memory, onnxruntime_impl, report, runner
from fastcnn.data import load_mnist
from mnist_data import mnist_dir


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny run of every case (full mode's list), with its JSON and plot."""
    out = tmp_path_factory.mktemp("bench")
    argv = ["--tiny", "--no-memory", "--threads", "1", "--out", str(out / "results.json")]
    if importlib.util.find_spec("matplotlib"):
        argv += ["--plot", str(out / "speedups.png")]
    assert bench_main.main(argv) == 0
    with open(out / "results.json") as f:
        return json.load(f), out


def test_every_case_runs_and_validates(tiny_run):
    run, _ = tiny_run
    assert [c["name"] for c in run["cases"]] == [c.name for c in cases.select()]
    for case in run["cases"]:
        trains = case["step"].startswith("train") or case["step"] == "predict"
        statuses = {name: r["status"] for name, r in case["results"].items()}
        assert statuses["fastcnn-cpu"] == "ok", case["name"]
        if case["step"] in ("conv2d", "grouped_conv2d", "conv_transpose2d", "max_pool2d_infer",
                            "predict"):   # ONNX Runtime's cases
            assert statuses.get("onnxruntime", "ok") == "ok", case["name"]
        numpy = "n/a" if trains else "ok" if hasattr(impls.NumPy, case["step"]) else "skipped"
        assert statuses["numpy"] == numpy, case["name"]
        assert set(statuses.values()) <= {"ok", "skipped", "n/a"}, (case["name"], statuses)
        for r in case["results"].values():
            if r["status"] == "ok":
                assert len(r["samples"]) == 1 and r["min"] <= r["median"] <= r["max"]
                assert r["relative_error"] <= runner.RTOL
                assert ("gflops" in r) == ("flops" in case)
                assert ("images_per_s" in r) == trains


def test_json_holds_machine_info_and_speedups(tiny_run):
    run, _ = tiny_run
    for key in ("cpu", "cores", "threads", "python", "numpy", "fastcnn", "date"):
        assert run["machine"][key], key
    assert run["machine"]["threads"] == 1
    conv = next(c for c in run["cases"] if c["name"] == "conv2d A")
    speedup = conv["results"]["fastcnn-cpu"]["speedup"]
    assert speedup["numpy"] > 0 and speedup["reference"] > 0
    assert ("torch" in speedup) == ("torch-cpu" in run["implementations"])
    matmul = next(c for c in run["cases"] if c["name"] == "matmul 1024x1024x1024")
    (target,) = matmul["targets"]
    assert target["baseline"] == "numpy" and target["met"] == (target["speedup"] >= 0.9)
    assert run["sgemm_ceiling"]["case"] == "matmul 4096x4096x4096"
    assert conv["results"]["fastcnn-cpu"]["sgemm_share"] > 0


def test_plot_is_a_png(tiny_run):
    pytest.importorskip("matplotlib")
    _, out = tiny_run
    with open(out / "speedups.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_table_and_readme_section(tiny_run, tmp_path):
    run, _ = tiny_run
    assert "conv2d+bwd D" in report.table(run)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{report.START}\nold\n{report.END}\nafter\n")
    report.update_readme(run, readme)
    text = readme.read_text()
    assert "old" not in text and "| `conv2d A` |" in text
    assert "The sgemm ceiling of this run: " in text
    assert text.endswith(f"{report.END}\nafter\n")
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit):
        report.update_readme(run, readme)


def test_load_shows_a_saved_run_again(tiny_run, tmp_path, capsys):
    _, out = tiny_run
    readme = tmp_path / "README.md"
    readme.write_text(f"{report.START}\n{report.END}\n")
    assert bench_main.main(["--load", str(out / "results.json"), "--readme", str(readme)]) == 0
    assert "conv2d+bwd D" in capsys.readouterr().out
    assert "| `matmul 1024x1024x1024` |" in readme.read_text()


class _Wrong(impls.NumPy):
    name = "wrong"

    @staticmethod
    def conv2d(x, weight, bias, stride, padding):
        y = impls.numpy_baseline.conv2d(x, weight, bias, stride, padding)
        y[0, 0, 0, 0] += 1.0  # one pixel off
        return y


def test_a_wrong_result_is_reported_and_not_timed():
    result = runner.run_case(cases.find("conv2d B", tiny=True), [_Wrong()], runner.ONCE)
    r = result["results"]["wrong"]
    assert r["status"] == "wrong" and "samples" not in r


def test_only_and_quick_pick_cases():
    assert [c.name for c in cases.select(only=["conv2d+bwd"])] == [
        f"conv2d+bwd {label}" for label in "ABCD"] + [
        "depthwise_conv2d+bwd 16x512x14x14", "grouped_conv2d+bwd 32x128x28x28"]
    assert [c.name for c in cases.select(only=["conv2d dx"])] == [
        f"conv2d dx {label}" for label in "ABCD"]
    assert "matmul 4096x4096x4096" not in [c.name for c in cases.select(quick=True)]
    assert cases.select(only=["no such case"]) == []
    # --quick trains one step and a short epoch; the full run the whole training split.
    assert [c.name for c in cases.select(quick=True, only=["seed_cnn"])] == [
        "seed_cnn train_step", "seed_cnn predict 100", "seed_cnn predict 1",
        "seed_cnn epoch 1000"]
    assert [c.name for c in cases.select(only=["seed_cnn"])] == [
        "seed_cnn train_step", "seed_cnn predict 100", "seed_cnn predict 1",
        "seed_cnn epoch 8000"]
    assert len(cases.select(quick=None)) == len(cases.CASES)


NEW_OPS = ["depthwise_conv2d 16x512x14x14", "depthwise_conv2d+bwd 16x512x14x14",
           "grouped_conv2d 32x128x28x28", "grouped_conv2d+bwd 32x128x28x28",
           "conv_transpose2d 64x128x16x16", "conv_transpose2d+bwd 64x128x16x16"]


@pytest.mark.parametrize("name", NEW_OPS + [
    f"conv2d {part} {label}" for part in ("dx", "dweight") for label in "ABCD"])
def test_a_new_case_runs_on_the_reference_cpu_and_torch(name):
    """Every new case's tiny twin validates on fastcnn's reference and cpu backends and on
    PyTorch (when installed), the forwards of the new ops on ONNX Runtime too."""
    found = [impls.Fastcnn("reference"), impls.Fastcnn("cpu"), impls.Torch("cpu"),
             onnxruntime_impl.OnnxRuntime()]
    found = [i for i in found if not i.unavailable()]
    case = cases.find(name, tiny=True)
    statuses = {n: r["status"] for n, r in runner.run_case(case, found, runner.ONCE)[
        "results"].items()}
    assert statuses["reference"] == statuses["fastcnn-cpu"] == "ok", statuses
    assert statuses.get("torch-cpu", "ok") == "ok", statuses
    want = "ok" if hasattr(onnxruntime_impl.OnnxRuntime, case.step) else "skipped"
    assert statuses.get("onnxruntime", want) == want, statuses


def _train_case(name):
    """A tiny training case with its inputs (random images)."""
    case = cases.find(name, tiny=True)
    return case, case.inputs(np.random.default_rng(0))


@pytest.mark.parametrize("name", ["seed_cnn train_step", "seed_cnn epoch 8000"])
def test_a_training_case_matches_the_oracle_from_the_same_weights(name):
    """fastcnn cpu (float32) and PyTorch, started from the same weights on the same
    batches, agree with fastcnn's float64 step: one step's loss and every gradient, or an
    epoch's mean loss (which the Adam updates of every step shape)."""
    case, arrays = _train_case(name)
    _, want = runner.oracle(case, arrays)
    assert len(want) == (7 if case.step == "train_step" else 1) and np.isfinite(want[0])
    found = [impls.Fastcnn("cpu")] + [i for i in [impls.Torch("cpu")] if not i.unavailable()]
    for impl in found:
        call = runner.make_call(impl, case, arrays)
        assert runner.relative_error(impl.get(call()), want) <= runner.RTOL, impl.name
        later = impl.get(call())   # the next call trains on from the updated weights
        assert runner.relative_error(later, want) > 0, impl.name


def test_a_training_step_lowers_the_loss_on_its_batch():
    case, arrays = _train_case("seed_cnn train_step")
    call = runner.make_call(impls.Fastcnn("cpu"), case, arrays)
    losses = [float(call()[0]) for _ in range(5)]
    assert losses[-1] < losses[0]


class _WrongTrainer(impls.Fastcnn):
    def __init__(self):
        super().__init__("cpu")
        self.name = "wrong"

    def train_step(self, x, y, lr, **weights):
        return super().train_step(x[:, :, ::-1], y, lr, **weights)   # images upside down


def test_a_wrong_training_step_is_reported_and_not_timed():
    result = runner.run_case(cases.find("seed_cnn train_step", tiny=True), [_WrongTrainer()],
                             runner.ONCE)
    r = result["results"]["wrong"]
    assert r["status"] == "wrong" and "samples" not in r


def test_training_cases_use_the_real_digits_when_found(monkeypatch, capsys):
    """The first digits of the fixed split when they are found; random images with
    --synthetic, or with a note when they are not found."""
    folder = mnist_dir()
    args = bench_main.parse(["--quick"])
    chosen = cases.select(quick=True, only=["seed_cnn"])
    monkeypatch.setenv("FASTCNN_MNIST_DIR", "/no/such/folder")
    assert bench_main._digits(args, chosen) is None
    assert "random images" in capsys.readouterr().err
    if folder is None:
        pytest.skip("real MNIST digits not found: set FASTCNN_MNIST_DIR")
    monkeypatch.setenv("FASTCNN_MNIST_DIR", str(folder))
    assert bench_main._digits(args, chosen) == folder
    assert bench_main._digits(bench_main.parse(["--synthetic"]), chosen) is None
    arrays = cases.find("seed_cnn train_step").inputs(np.random.default_rng(0), folder)
    x, y = load_mnist(folder)
    assert arrays["x"].shape == (100, 1, 28, 28) and np.array_equal(arrays["y"], y[:100])


def test_profile_step_times_every_part(capsys):
    assert bench_main.main(["--profile-step", "--synthetic", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for part in ("0 Conv2d forward", "3 Conv2d backward", "loss forward", "optimizer step"):
        assert part in out


def test_tiny_twins_keep_the_structure():
    for case in cases.CASES:
        tiny = case.shrunk()
        assert (tiny.name, tiny.step) == (case.name, case.step)
        assert list(tiny.arrays) == list(case.arrays)
        assert np.prod(tiny.arrays[next(iter(tiny.arrays))]) <= 2 * 3 * 19 * 19


def test_peak_memory_counts_the_outputs():
    """conv2d+bwd B returns y, dx, dweight, dbias: at least their 7.5 MB are resident."""
    peaks = memory.peak_memory("fastcnn-cpu", ["conv2d+bwd B"], 1)
    outputs = 4 * (100 * 64 * 14 * 14 + 100 * 32 * 14 * 14)
    assert outputs <= peaks["conv2d+bwd B"]["peak_bytes"] < 20 * outputs


def test_runs_as_a_module_of_the_installed_package(tmp_path):
    """python -m fastcnn.bench works from any directory (the console script calls the
    same main, which the tests above run in-process)."""
    done = subprocess.run([sys.executable, "-m", "fastcnn.bench", "--list"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "conv2d+bwd A" in done.stdout and "(full only)" in done.stdout


def _timed(name, step, flops, medians):
    """A case's result with made-up median times (seconds per implementation), rates and
    speedups added as after a run."""
    results = {impl: {"status": "ok", "median": m, "min": m, "max": m, "samples": [m]}
               for impl, m in medians.items()}
    return runner.add_rates_and_speedups({"name": name, "step": step, "describe": "",
                                          "flops": flops, "results": results})


def test_sgemm_ceiling_and_the_conv_rows_share_of_it():
    """The ceiling is the best CPU rate on the ceiling's matmul case (not the GPU's, not
    another matmul's); each conv row on the CPU shows its rate as a share of it."""
    matmul = _timed("matmul 2048x2048x2048", "matmul", 200e9,
                    {"fastcnn-cpu": 2.0, "numpy": 1.0, "torch-cpu": 4.0, "fastcnn-cuda": 0.1})
    small = _timed("matmul 1024x1024x1024", "matmul", 200e9, {"numpy": 0.5})
    conv = _timed("conv2d dx B", "conv2d_dx", 100e9,
                  {"fastcnn-cpu": 2.0, "torch-cpu": 1.0, "fastcnn-cuda": 0.1})
    pool = _timed("max_pool2d 1x1x2x2", "max_pool2d", 0, {"fastcnn-cpu": 1.0})
    ceiling = runner.add_sgemm_shares([small, matmul, conv, pool], "matmul 2048x2048x2048")
    assert ceiling == {"case": "matmul 2048x2048x2048", "implementation": "numpy",
                       "gflops": 200.0}
    assert conv["results"]["fastcnn-cpu"]["sgemm_share"] == pytest.approx(25.0)
    assert conv["results"]["torch-cpu"]["sgemm_share"] == pytest.approx(50.0)
    assert "sgemm_share" not in conv["results"]["fastcnn-cuda"]
    assert "sgemm_share" not in matmul["results"]["numpy"]
    run = {"mode": "quick", "cases": [matmul, conv], "sgemm_ceiling": ceiling}
    text = report.table(run)
    assert text.startswith("The sgemm ceiling of this run: 200.0 GFLOP/s (numpy, "
                           "matmul 2048x2048x2048")
    (row,) = [line for line in text.splitlines() if line.startswith("conv2d dx B")]
    assert row.split()[-4:] == ["50.0", "GFLOP/s", "25%", "0.50x"]   # rate, of sgemm, vs torch
    assert runner.add_sgemm_shares([conv], "matmul 2048x2048x2048") is None


def test_a_conv_case_brings_the_ceiling_case_along():
    chosen = cases.with_ceiling(cases.select(quick=True, only=["conv2d dx B"]), quick=True)
    assert [c.name for c in chosen] == ["conv2d dx B", "matmul 2048x2048x2048"]
    assert cases.with_ceiling(cases.select(only=["pool"]), quick=False) == cases.select(
        only=["pool"])
    full = cases.select(only=["conv2d B", "matmul"])
    assert cases.with_ceiling(full, quick=False) == full   # 4096^3 is already there


@pytest.mark.parametrize("gflops, verdict", [(120.0, "met"), (80.0, "NOT MET")])
def test_a_rate_target_is_reported_in_gflops(gflops, verdict):
    """conv2d+bwd B's >= 100 GFLOP/s (issue 16) is a rate, not a speedup: the report says
    what was needed and measured in GFLOP/s, beside the case's speedup targets."""
    flops = cases.find("conv2d+bwd B").flops
    result = _timed("conv2d+bwd B", "conv2d_train", flops,
                    {"fastcnn-cpu": flops / (gflops * 1e9), "torch-cpu": flops / 60e9})
    (rate,) = [t for t in result["targets"] if t["baseline"] == "gflops"]
    assert rate["speedup"] == pytest.approx(gflops) and rate["met"] == (verdict == "met")
    lines = report.targets_table({"cases": [result]}).splitlines()
    (line,) = [line for line in lines if "GFLOP/s" in line]
    cells = ["100", "GFLOP/s", f"{gflops:.1f}", "GFLOP/s", *verdict.split()]  # needs, measured
    assert line.split()[-len(cells):] == cells
    speedups = {t["goal"]: t["met"] for t in result["targets"] if t["baseline"] == "torch"}
    assert speedups == {"<= 1.0x PyTorch's time (#3)": gflops >= 60,
                        ">= 1.25x PyTorch CPU (#16)": gflops >= 75}
