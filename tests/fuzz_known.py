"""Known failure classes of the fuzz suite, all in Python-level checks that other branches
are adding as this is written (issue 11, items 1, 4 and 5): the `nn` branch
(fastcnn/functional.py, nn/layers.py, data.py, optim.py) and the `model` branch (model
loading). test_fuzz.py marks a group xfail when each failure it finds matches one of
these, and fails on any other. When a branch lands, delete its entries: the suite then
holds the code to them.

An entry matches a failure by regexes: group, kind (exception, crash, hang,
inconsistent: one backend refused what another accepted, mismatch), error (the
exception's type, or the signal), and optionally message, targets and call (the
case's one-line repr).
"""

NN = "nn branch"

KNOWN = [
    # ---------------------------------------------------------------- functional.py
    dict(id="not-an-array", owner=NN, group="functional|layers|optimizers",
         kind="exception", error="AttributeError",
         message=r"has no attribute '(shape|ndim|reshape)'",
         reason="None, a list, a number, a string or a dict where an array is expected "
                "(F.relu(None), F.sgd_step(p, g, velocity=[0.1]), a layer's backward(None)): "
                "AttributeError, not a TypeError naming the argument"),
    dict(id="int-too-large-for-C", owner=NN, group="functional|layers",
         kind="exception", error="OverflowError",
         message=r"too large to convert to (int|C long)",
         reason="stride, padding, kernel_size, dilation or scale_factor of 10**10 or 2**63: "
                "accepted by functional, refused by the compiled kernels' C ints (or by "
                "NumPy's repeat in the reference's upsample)"),
    dict(id="int-too-large-for-float", owner=NN, group="functional|layers|optimizers",
         kind="exception", error="OverflowError", message="int too large to convert to float",
         reason="a float argument given as an int past the float range (lr=10**400, "
                "negative_slope, alpha, eps, momentum): functional's _number calls float()"),
    dict(id="read-only-out-written", owner=NN, group="functional", kind="inconsistent",
         error="ValueError", message="(assignment destination|output array) is read-only",
         reason="out= (or an optimizer's state array) with flags.writeable False: the cpu "
                "conv kernels write into it, other compiled ops accept an empty one, where "
                "the reference refuses it with NumPy's error; functional must refuse it"),
    dict(id="read-only-memmap-out-segfault", owner=NN, group="functional", kind="crash",
         error="SIGSEGV", targets="conv2d|conv2d_backward", call=r"out=.*memmap_r",
         reason="out= a read-only np.memmap on the Winograd path (3x3, stride 1, >= 16 "
                "channels): the kernel writes through its raw pointer (issue 11, item 1)"),
    dict(id="step-grad-none", owner=NN, group="functional", kind="inconsistent",
         error=".*", targets=r"\w+_step", call=r"grad=None",
         reason="an optimizer step with grad=None: _step_arrays skips None entries (meant "
                "for the optional state arrays), so the reference fails inside NumPy and "
                "the compiled steps accept it when the arrays are empty"),
    # ---------------------------------------------------------------- nn/layers.py
    dict(id="layer-backward-not-an-array", owner=NN, group="layers",
         kind="exception", error="AttributeError|IndexError",
         message=r"has no attribute '(shape|ndim|reshape|dtype)'|tuple index out of range",
         reason="a layer's backward with a list, a number, None or a wrong-rank dy "
                "(Flatten, Upsample, Maxout, Dropout, BatchNorm reshape or index it first)"),
    dict(id="layer-constructor-arithmetic", owner=NN, group="layers",
         kind="exception", error="ZeroDivisionError|OverflowError",
         message=r"division|modulo|cannot convert float (infinity|NaN) to integer",
         reason="MaxPool2d/AvgPool2d(kernel_size=0 or stride=0), Maxout(0) divide by zero "
                "in forward; Linear(0, n) and Conv2d(0, ...) in their initialisation; "
                "Upsample(scale_factor=inf) computes int(inf) for the output shape"),
    # ---------------------------------------------------------------- data.py
    dict(id="dataloader-dict", owner=NN, group="dataloader", kind="exception",
         error="KeyError", reason="DataLoader over a dict indexes it with ints"),
    dict(id="dataloader-sampler-range", owner=NN, group="dataloader", kind="exception",
         error="IndexError|OverflowError",
         reason="a sampler index >= len(dataset) (IndexError) or past int64 (OverflowError)"),
]
