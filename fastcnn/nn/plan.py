"""Eval-mode forward passes without the checks: a layer's plan, made on its first call.

In eval mode a layer's forward of an input like the last one (same type, shape, dtype
and strides, the same parameter arrays) makes the very backend call the checked path
made then, into the layer's reused result array: the argument checks, the shape rules
and the allocations of ``fastcnn.functional`` ran once, on the first call, which the
plan recorded. That takes a layer's overhead from tens of microseconds to a few, which is
what a forward of one image is made of.

A plan is made only when the checked path made exactly one backend op call whose arrays
are the input itself, the layer's own parameters and buffers, and the result it
returned (a conversion of x, or an array derived from a parameter, would be stale on the
next call): otherwise the layer keeps its checked path (its plan is None).
"""

# Backend calls that check, convert or allocate, not compute: the plan's reused result
# replaces the allocations, and a converted input or weight is not planned.
HELPERS = frozenset({"empty", "zeros", "asarray", "is_array", "check_indices", "check_labels"})


def _key(layer, x):
    """What must not change for a plan to hold: the input's kind and layout, and the arrays
    the layer holds."""
    return (type(x), tuple(x.shape), x.dtype, tuple(x.strides),
            tuple(map(id, layer.params.values())), tuple(map(id, layer.buffers.values())))


class Plan:
    """One recorded backend call, replayed for a new input into a reused result."""

    def __init__(self, key, function, args, kwargs, slot, rest, result_key, shape, dtype):
        self.key, self.function, self.args, self.kwargs = key, function, args, kwargs
        self.slot = slot                # where x goes in args (None between calls)
        self.rest = rest                # out's other entries (None) after y, or None
        self.result_key = result_key    # the layer's reuse key of the result
        self.shape, self.dtype = shape, dtype

    @classmethod
    def of(cls, layer, x, y, calls):
        """The plan of the call that made y from x, or None (see the module's docstring)."""
        ops = [c for c in calls if c[0] not in HELPERS]
        if len(ops) != 1 or not hasattr(y, "shape"):
            return None
        _, function, args, kwargs = ops[0]
        out = kwargs.get("out")
        first = out[0] if isinstance(out, tuple) else out
        if first is not y or (isinstance(out, tuple) and any(o is not None for o in out[1:])):
            return None
        held = {id(a) for a in (*layer.params.values(), *layer.buffers.values())}
        slots = [i for i, a in enumerate(args) if a is x]
        others = [a for i, a in enumerate(args) if i not in slots and hasattr(a, "shape")]
        if len(slots) != 1 or any(id(a) not in held for a in others) or any(
                hasattr(v, "shape") for k, v in kwargs.items() if k != "out"):
            return None
        result_key = next((k for k, a in layer.reuse.arrays.items() if a is y), None)
        if result_key is None:
            return None
        args = [None if i == slots[0] else a for i, a in enumerate(args)]
        kwargs = {k: v for k, v in kwargs.items() if k != "out"}   # no hold on y
        return cls(_key(layer, x), function, args, kwargs, slots[0],
                   out[1:] if isinstance(out, tuple) else None, result_key, tuple(y.shape),
                   y.dtype)

    def run(self, layer, x):
        """y for x, or None when x or the layer's arrays are not those of the plan."""
        if _key(layer, x) != self.key:
            return None
        y = layer.reuse.reuse(self.result_key, self.shape, self.dtype, x)
        args = self.args
        args[self.slot] = x
        try:
            self.function(*args, **self.kwargs,
                          out=y if self.rest is None else (y,) + self.rest)
        finally:
            args[self.slot] = None   # hold on to no caller's input
        return y
