"""What is particular to the cuda backend (its ops are tested with the others,
through the backend fixtures): compilation for a real GPU, the GEMM's GPU tile
shapes, the bounded conv workspace, other libraries' CUDA arrays, one copy to
the host per training step (pooling indices fastcnn wrote are trusted, labels
checked by the loss kernels), and the errors without numba-cuda or without a GPU."""

import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import fastcnn.functional as F
from helpers import assert_matches, host, reference, to_backend

cuda_backend = pytest.importorskip("fastcnn.backends.cuda", reason="numba-cuda not installed")
from fastcnn.backends.cuda import _jit, conv, gemm  # noqa: E402

ON_SIMULATOR = _jit.SIMULATOR


def _run(args, cwd, **env):
    """python args in a fresh interpreter (numba reads its settings once, at import),
    started in cwd (an empty directory: from the checkout, its fastcnn sources would
    shadow the installed package and its compiled kernels)."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=900, cwd=cwd)


def test_every_kernel_compiles_for_a_gpu(tmp_path):
    """compile_ptx for sm_80, float32 and float64, every kernel and GEMM tile shape,
    with the simulator off (no GPU needed); float32 kernels free of float64."""
    done = _run(["-m", "fastcnn.backends.cuda.compile_check"], tmp_path,
                NUMBA_ENABLE_CUDASIM="0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "compilations of" in done.stdout


def test_same_ops_and_signatures_as_the_reference():
    from fastcnn.backends import reference
    from fastcnn.backends import cpu
    ops = [name for name, f in vars(reference).items() if inspect.isfunction(f)
           and f.__module__.startswith(reference.__name__ + ".") and not name.startswith("_")]
    assert "conv2d" in ops and "adam_step" in ops
    for name in ops:
        for backend in (cuda_backend, cpu):
            assert inspect.signature(getattr(backend, name)) == \
                inspect.signature(getattr(reference, name)), (backend.__name__, name)


@pytest.mark.skipif(not ON_SIMULATOR, reason="the simulator shrinks the GEMM's thread block")
@pytest.mark.parametrize("r_m, r_n", [(r_m, r_n) for r_m in gemm.RS for r_n in gemm.RS])
def test_gemm_gpu_tile_shapes(r_m, r_n):
    """The GEMM as compiled for the GPU (16 x 16 threads), which the simulator's smaller
    blocks do not run (they run the same code with smaller constants): one tile with
    ragged edges, k across two steps, a bias, accumulation, one operand transposed.
    (Block offsets, batches and splits do not depend on the tile shape: the other tests
    cover them.)"""
    rng = np.random.default_rng(r_m * 10 + r_n)
    m, n, k = 16 * r_m - 3, 16 * r_n - 1, 11
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    bias, c0 = rng.standard_normal(m), rng.standard_normal((m, n))
    transpose_a = (r_m + r_n) % 2 == 0   # A stored (k, m), or else B stored (n, k)
    a_op = gemm.Operand(to_backend("cuda", a.T.copy() if transpose_a else a)[0], 0,
                        *((1, m) if transpose_a else (k, 1)))
    b_op = gemm.Operand(to_backend("cuda", b if transpose_a else b.T.copy())[0], 0,
                        *((n, 1) if transpose_a else (1, k)))
    c, bias_d = to_backend("cuda", c0, bias)
    gemm.gemm_kernel(np.float64, 16, 16, r_m, r_n, gemm.BK)[(1, 1, 1), (16, 16)](
        a_op.array, b_op.array, c.reshape(c.size), bias_d, m, n, k, 1, 1,
        *a_op.strides, *b_op.strides, 0, gemm.BIAS_PER_ROW, True)
    np.testing.assert_allclose(host(c), c0 + a @ b + bias[:, None], rtol=1e-12, atol=1e-12)


def test_gemm_picks_tiles_that_fit():
    assert gemm._config(4096, 4096, 1)[2:4] == (8, 8)
    assert gemm.TM * gemm._config(16, 4096, 64)[2] == 16   # 16 output channels: 16 rows


def test_conv_in_a_workspace_of_one_image(monkeypatch):
    """A workspace too small for two images: conv runs image by image, dW accumulates."""
    monkeypatch.setattr(conv, "WORKSPACE_BYTES", 1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 5, 4))
    w = rng.standard_normal((3, 2, 3, 2))
    b = rng.standard_normal(3)
    geo = dict(stride=(1, 2), padding=1, dilation=(2, 1))
    y = host(F.conv2d(*to_backend("cuda", x, w, b), **geo))
    assert_matches(y, reference("conv2d", x, w, b, **geo),
                   reference("conv2d", np.abs(x), np.abs(w), np.abs(b), **geo), x.dtype)
    dy = rng.standard_normal(y.shape)
    got = host(F.conv2d_backward(*to_backend("cuda", dy, x, w), **geo))
    want = reference("conv2d_backward", dy, x, w, **geo)
    bound = reference("conv2d_backward", np.abs(dy), np.abs(x), np.abs(w), **geo)
    for g, wnt, bnd in zip(got, want, bound):
        assert_matches(g, wnt, bnd, x.dtype)


class Foreign:
    """Stands in for a CuPy array or a PyTorch CUDA tensor: only the CUDA array interface,
    a shape and a dtype that is not NumPy's. On the simulator "device" memory is host
    memory, so a NumPy array can back it."""

    def __init__(self, memory):
        self.memory = memory
        self.shape, self.dtype = memory.shape, "foreign.float32"

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "strides": self.memory.strides, "version": 3,
                "typestr": self.memory.dtype.str, "data": (self.memory.ctypes.data, False),
                "stream": 1}


@pytest.mark.skipif(not ON_SIMULATOR, reason="needs the simulator's host-backed memory")
def test_other_libraries_arrays_are_used_in_place():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    out = np.zeros((4, 3), np.float32)
    y = F.linear(Foreign(x), Foreign(w), out=Foreign(out))
    assert isinstance(y, Foreign) and y.memory is out          # out= comes back as given
    assert_matches(out, reference("linear", x, w), reference("linear", abs(x), abs(w)),
                   np.float32)
    # A transposed view (non-contiguous) is copied to contiguous first.
    wt = np.ascontiguousarray(w.T).T
    assert_matches(host(F.linear(Foreign(x), Foreign(wt))), reference("linear", x, w),
                   reference("linear", abs(x), abs(w)), np.float32)
    # Optimizer state is updated in place.
    param, grad = rng.standard_normal(6).astype(np.float32), np.ones(6, np.float32)
    before = param.copy()
    F.sgd_step(Foreign(param), Foreign(grad), lr=0.5)
    np.testing.assert_allclose(param, before - 0.5)
    with pytest.raises(ValueError, match="mixed devices"):
        F.linear(Foreign(x), w)


@pytest.mark.skipif(not ON_SIMULATOR, reason="slices of simulator arrays")
def test_strided_device_arrays_are_made_contiguous():
    x = np.arange(2 * 3 * 4 * 6, dtype=np.float64).reshape(2, 3, 4, 6) - 50
    strided = to_backend("cuda", x)[0][:, ::2, :, 1::2]
    assert not strided.is_c_contiguous()
    np.testing.assert_array_equal(host(F.relu(strided)), np.maximum(x[:, ::2, :, 1::2], 0))


def test_big_endian_arrays_arrive_in_native_byte_order():
    """The kernels read native integers only: big-endian labels (as IDX files hold them)
    raised NumbaNotImplementedError in softmax_cross_entropy_backward (found by fuzzing)."""
    labels = np.array([2, 0, 1], dtype=">i4")
    device = cuda_backend.to_device(labels)
    assert device.dtype == np.dtype(np.int32)
    probs = F.softmax(np.eye(3, dtype=np.float32))
    want = F.softmax_cross_entropy_backward(probs, labels, backend="reference")
    got = F.softmax_cross_entropy_backward(*to_backend("cuda", probs), device)
    np.testing.assert_allclose(host(got), want, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scale_in_place(dtype):
    """The kernel fastcnn.distributed divides GPU gradient sums with."""
    from fastcnn.backends.cuda import _arrays
    x = np.arange(1000, dtype=dtype) - 300
    (dev,) = to_backend("cuda", x)
    _arrays.scale(dev, 0.5)
    np.testing.assert_array_equal(host(dev), x * dtype(0.5))


class Copies:
    """Counts the simulator's copies between host and device (and fails an implicit one)."""

    def __init__(self, monkeypatch):
        from numba import cuda
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        self.down, self.up = [], []

        def counted(f, log):
            def copy(*args, **kwargs):
                log.append(args[0].shape)
                return f(*args, **kwargs)
            return copy

        monkeypatch.setattr(FakeCUDAArray, "copy_to_host",
                            counted(FakeCUDAArray.copy_to_host, self.down))
        monkeypatch.setattr(FakeCUDAArray, "copy_to_device",
                            counted(FakeCUDAArray.copy_to_device, self.up))
        monkeypatch.setattr(cuda, "to_device", counted(cuda.to_device, self.up))
        monkeypatch.setattr(FakeCUDAArray, "__array__",
                            lambda *a, **k: pytest.fail("implicit copy"), raising=False)

    def clear(self):
        self.down.clear()
        self.up.clear()


def _seed_cnn(device):
    """The seed MNIST CNN's layers (conv-relu-pool twice, flatten, linear; Adam), narrow
    and on 8 x 8 images so that the simulator runs it in seconds."""
    from fastcnn import Sequential, nn
    from fastcnn.optim import Adam
    model = Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Conv2d(2, 3, 3, padding=1, rng=1), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Flatten(), nn.Linear(12, 3, rng=2))
    model.compile(Adam(model.parameters(), lr=0.01), nn.SoftmaxCrossEntropy())
    return model.to(device)


@pytest.mark.skipif(not ON_SIMULATOR, reason="counts the simulator's copies")
def test_a_training_step_copies_only_its_batch_and_its_loss(monkeypatch):
    """Issue 5: a training step uploads its batch (images, labels) and copies one thing
    back, its loss; the labels are checked in the loss kernel, the pooling indices not at
    all (max_pool2d wrote them), the right predictions are counted on the device. (Before:
    4 copies back, the loss and the checks of the labels twice and of the indices once.)"""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((12, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    model, copies = _seed_cnn("cuda"), Copies(monkeypatch)
    from fastcnn.model.training import _counter
    counter = _counter(model)
    model.train_step(x[:4], y[:4], counter)            # warm-up: buffers, optimizer state
    for step in range(2):
        copies.clear()
        loss, correct = model.train_step(x[:4], y[:4], counter)
        assert isinstance(loss, float) and correct is counter
        assert len(copies.down) == 1 and copies.down[0][0] == 2, copies.down  # loss partials
        assert copies.up == [(4, 1, 8, 8), (4,)], copies.up
    # fit: a copy per step, and one for the epoch's count of right predictions
    from fastcnn.data import DataLoader
    copies.clear()
    history = model.fit(DataLoader((x, y), batch_size=4), verbose=0)
    assert len(copies.down) == 3 + 1, copies.down
    # ... which counts as the CPU does
    cpu = _seed_cnn("cpu")
    for _ in range(3):
        cpu.train_step(x[:4], y[:4])
    want = cpu.fit(DataLoader((x, y), batch_size=4), verbose=0)
    assert history["accuracy"] == want["accuracy"]
    np.testing.assert_allclose(history["loss"], want["loss"], rtol=1e-4)


@pytest.mark.skipif(not ON_SIMULATOR, reason="counts the simulator's copies")
def test_the_ops_of_a_training_step_copy_only_the_loss(monkeypatch):
    """conv -> relu -> pool -> linear -> loss and back, then SGD, with the functional ops:
    one copy to the host, the loss's (which carries its kernel's check of the labels).
    (Before: 4, also the checks of the labels twice and of the pooling indices once.)"""
    rng = np.random.default_rng(2)
    x, w, b, fw, labels = to_backend(
        "cuda", rng.standard_normal((2, 1, 6, 6)).astype(np.float32),
        rng.standard_normal((4, 1, 3, 3)).astype(np.float32), np.zeros(4, np.float32),
        rng.standard_normal((3, 16)).astype(np.float32), np.array([0, 2]))
    copies = Copies(monkeypatch)
    h = F.relu(F.conv2d(x, w, b, padding=1))
    p, idx = F.max_pool2d(h, 3)
    z = F.linear(p.reshape((2, 16)), fw)
    loss, probs = F.softmax_cross_entropy(z, labels)
    dz = F.softmax_cross_entropy_backward(probs, labels)
    dp, dfw, _ = F.linear_backward(dz, p.reshape((2, 16)), fw)
    dh = F.relu_backward(F.max_pool2d_backward(dp.reshape(p.shape), idx, h.shape), h)
    _, dw, db = F.conv2d_backward(dh, x, w, padding=1, need_dx=False)
    for param, grad in ((w, dw), (b, db), (fw, dfw)):
        F.sgd_step(param, grad, lr=0.1)
    assert isinstance(loss, float)
    assert len(copies.down) == 1 and not copies.up, (copies.down, copies.up)


@pytest.mark.skipif(not ON_SIMULATOR, reason="counts the simulator's copies")
def test_pooling_indices_are_checked_unless_fastcnn_wrote_them(monkeypatch):
    rng = np.random.default_rng(3)
    x, dy = to_backend("cuda", rng.standard_normal((2, 3, 4, 4)),
                       rng.standard_normal((2, 3, 2, 2)))
    y, idx = F.max_pool2d(x, 2)
    _, out_idx = F.max_pool2d(x, 2, out=(cuda_backend.empty(y.shape, np.float64),
                                         cuda_backend.empty(y.shape, np.int32)))
    g, g_idx = F.maxout(x, 3)
    want = reference("max_pool2d_backward", host(dy), host(idx), x.shape)
    copies = Copies(monkeypatch)
    got = [F.max_pool2d_backward(dy, trusted, x.shape) for trusted in (idx, out_idx)]
    F.maxout_backward(g, g_idx, 3)
    assert copies.down == []   # none checked
    for dx in got:
        np.testing.assert_array_equal(host(dx), want)
    # Any other index array is checked: a copy of good ones, or ones that do not fit
    idx_copy = to_backend("cuda", host(idx))[0]
    copies.clear()
    F.max_pool2d_backward(dy, idx_copy, x.shape)
    assert len(copies.down) == 1
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 4\), found values in"):
        F.max_pool2d_backward(dy, idx, (2, 3, 2, 2))   # written for a 4 x 4 input


@pytest.mark.skipif(not ON_SIMULATOR, reason="writes into simulator arrays")
def test_changed_pooling_indices_never_write_out_of_bounds():
    """Indices max_pool2d wrote are not checked again, so if they are changed after,
    the kernel must skip those out of range (on a GPU, writing there would corrupt memory
    or crash; on the simulator a too-large one raises, a negative one wraps around)."""
    rng = np.random.default_rng(4)
    x, dy = to_backend("cuda", rng.standard_normal((1, 2, 4, 4)),
                       rng.standard_normal((1, 2, 2, 2)))
    _, idx = F.max_pool2d(x, 2)
    changed = host(idx)
    changed[0, 0, 0, 0], changed[0, 1, 1, 1] = 16, -1
    idx.copy_to_device(changed)
    got = host(F.max_pool2d_backward(dy, idx, x.shape))
    kept = changed.copy()
    kept[0, 0, 0, 0] = kept[0, 1, 1, 1] = 0
    want = reference("max_pool2d_backward", host(dy) * (changed == kept), kept, x.shape)
    np.testing.assert_array_equal(got, want)


def test_bad_labels_raise_from_the_loss_copy():
    """Labels are checked by the loss kernels as they read them; the ops that bring a
    value to the host raise the CPU's error from it, the backward marks NaN rows."""
    logits = np.random.default_rng(5).standard_normal((4, 3))
    for labels in (np.array([0, 1, 3, -1]), np.array([0, 1, 3, -1], np.int32)):
        d_logits, d_labels = to_backend("cuda", logits, labels)
        for op in ("softmax_cross_entropy", "count_correct"):
            with pytest.raises(ValueError, match=rf"{op}: labels must lie in \[0, 3\), "
                                                 r"found values in \[-1, 3\]"):
                getattr(F, op)(d_logits, d_labels)
        good = np.array([0, 1, 2, 0], labels.dtype)
        _, probs = F.softmax_cross_entropy(d_logits, to_backend("cuda", good)[0])
        grad = host(F.softmax_cross_entropy_backward(probs, d_labels))
        want = reference("softmax_cross_entropy_backward", host(probs), good)
        np.testing.assert_allclose(grad[:2], want[:2], rtol=1e-12)
        assert np.isnan(grad[2:]).all()
        counter = cuda_backend.zeros((1,), np.int64)   # counts what it can, raises nothing
        F.count_correct(d_logits, d_labels, into=counter)
        assert host(counter)[0] == (logits.argmax(1)[:2] == labels[:2]).sum()
    huge = to_backend("cuda", np.array([0, 1, 2**40, 2]))[0]   # beyond int32: clamped
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        F.softmax_cross_entropy(to_backend("cuda", logits)[0], huge)


WITHOUT_NUMBA_CUDA = """
import sys
sys.modules["numba_cuda"] = None   # as if not installed
import numpy as np
import fastcnn.functional as F
F.relu(np.ones(3))                 # everything CPU still works
try:
    import fastcnn.backends.cuda
except ImportError as e:
    print(e)
"""

WITHOUT_A_GPU = """
import numpy as np
from numba import cuda
import fastcnn
from fastcnn.backends.cuda import use_memory_pool
use_memory_pool()                  # Numba accepts the pool as its memory manager
if cuda.is_available():
    print("has a GPU")
    raise SystemExit
try:
    fastcnn.to_device(np.ones(3))
except RuntimeError as e:
    print(e)
"""


def test_without_numba_cuda_the_error_says_what_to_install(tmp_path):
    done = _run(["-c", WITHOUT_NUMBA_CUDA], tmp_path)
    assert done.returncode == 0, done.stderr
    assert 'pip install "fastcnn[gpu]"' in done.stdout and "gpu-cu12" in done.stdout


def test_without_a_gpu_the_error_says_so(tmp_path):
    done = _run(["-c", WITHOUT_A_GPU], tmp_path, NUMBA_ENABLE_CUDASIM="0")
    assert done.returncode == 0, done.stderr
    if "has a GPU" in done.stdout:
        pytest.skip("this machine has a GPU")
    assert "no CUDA GPU was found" in done.stdout


def test_gpu_launches_are_configured_once_without_warnings(monkeypatch):
    """On a GPU a launcher keeps each configured launch, and silences Numba's warning
    about small grids (they are deliberate); empty grids launch nothing."""
    import warnings

    class Dispatcher:
        configured = []

        def __getitem__(self, config):
            self.configured.append(config)
            warnings.warn("Grid size 3 will likely result in GPU under-utilization due to "
                          "low occupancy.")
            return lambda *args: ("launched", config, args)

    monkeypatch.setattr(_jit, "SIMULATOR", False)
    launcher = _jit._Launcher(None, Dispatcher(), np.dtype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert launcher[3, 256](1, 2) == ("launched", (3, 256), (1, 2))
        assert launcher[3, 256](4) == ("launched", (3, 256), (4,))
        assert launcher[(0, 1, 1), 256]() is None
    assert Dispatcher.configured == [(3, 256)]


@pytest.mark.parametrize("splits", [1, 2])
def test_channel_sums_split_over_blocks(splits):
    """Bias gradients: each channel's sum split over blocks, the partials added after."""
    from fastcnn.backends.cuda import reduce
    x = np.random.default_rng(4).standard_normal((3, 2, 70))
    xd, out = to_backend("cuda", x, np.zeros(2))
    reduce.sum_channels(xd, out, splits=splits)
    np.testing.assert_allclose(host(out), x.sum(axis=(0, 2)), rtol=1e-12)
