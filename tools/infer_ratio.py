"""The seed CNN's eval-mode forward, fastcnn against ONNX Runtime, in interleaved rounds
(same-run ratios), and the time of each of fastcnn's layers (issue 16).

    python tools/infer_ratio.py BATCH [ROUNDS]     # from outside the checkout's root
"""

import sys
import time

import numpy as np

from fastcnn.bench import training
from fastcnn.bench.cases import seed_cnn_predict
from fastcnn.bench.impls import Fastcnn
from fastcnn.bench.onnxruntime_impl import OnnxRuntime


def main(batch, rounds):
    arrays = training.inputs(seed_cnn_predict(batch), np.random.default_rng(0))
    x, y = arrays.pop("x"), arrays.pop("y")
    ours, ort = Fastcnn("cpu").predict(x, y, **arrays), OnnxRuntime().predict(x, y, **arrays)
    reps = max(1, 2000 // batch)

    def timed(call):
        start = time.perf_counter()
        for _ in range(reps):
            call()
        return (time.perf_counter() - start) / reps

    ours(), ort()
    times = np.array([(timed(ours), timed(ort)) for _ in range(rounds)])
    mine, theirs = np.median(times, axis=0)
    spread = np.percentile(times[:, 1] / times[:, 0], [10, 50, 90]).round(2)
    print(f"batch {batch}: fastcnn {mine * 1e3:.3f} ms, ONNX Runtime {theirs * 1e3:.3f} ms, "
          f"ratio {theirs / mine:.2f} (per-round ratios, 10/50/90 %: {spread})")
    model = training.fastcnn_model(arrays, 1e-3, "cpu").eval()
    for layer in model.layers:
        out = layer.forward(x)
        seconds = np.median([timed(lambda: layer.forward(x)) for _ in range(5)])
        print(f"   {type(layer).__name__:10s} {seconds * 1e6:9.1f} us")
        x = out


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 15)
