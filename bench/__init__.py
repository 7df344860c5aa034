"""fastcnn's benchmark suite (installed as ``fastcnn.bench``, run as ``fastcnn-bench``).

cases.py    the registry: one entry per op and shape
impls.py    the implementations timed side by side, all with the same calls
numpy_baseline.py   the plain NumPy version of every op
training.py the seed MNIST CNN in fastcnn and PyTorch, its digits, a step part by part
runner.py   validate against the oracle, warm up, time, compare
memory.py   peak memory of one call, in a fresh process
report.py   the table, the JSON, the plot, the README section
"""
