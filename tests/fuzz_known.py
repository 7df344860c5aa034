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

KNOWN = [
]
