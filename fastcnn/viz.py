"""fastcnn.viz: pictures of what a network learned, each written as a PNG (needs
matplotlib: pip install 'fastcnn[viz]').

    from fastcnn import viz
    viz.filters(model, "runs/filters.png")                  # the first Conv2d's kernels
    viz.feature_maps(model, x_val[0], "runs/maps.png")      # one image through the layers
    viz.confusion_matrix(y_val, model.predict(x_val), "runs/confusion.png")
    viz.image_rows({"input": x[:8], "output": model.predict(x[:8])}, "runs/rows.png")

Each function also returns what it drew (the kernels, the maps, the counts), so a test
or a notebook can look at the numbers. Figures are made with matplotlib's object API
(``matplotlib.figure.Figure``), not pyplot: nothing opens a window or needs a display.
"""

import math
import os
from collections import OrderedDict

import numpy as np

from . import backends
from .nn.layers import Conv2d


def _figure(width, height):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("fastcnn.viz needs matplotlib: pip install 'fastcnn[viz]'") from None
    return Figure(figsize=(width, height), layout="constrained")


def _tile(ax, image, cmap="gray", title=None, **kwargs):
    ax.imshow(image, cmap=cmap, interpolation="nearest", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=7)


def _grid(count, columns=None):
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    return math.ceil(count / columns), columns


def _host(array):
    return np.asarray(backends.to_host(array), dtype=np.float64)


# ---------------------------------------------------------------- filters


def first_conv(model):
    """The first Conv2d of a model (in forward order), or the layer itself."""
    if isinstance(model, Conv2d):
        return model
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, Conv2d):
            return layer
    raise ValueError(f"viz: {type(model).__name__} has no Conv2d layer to draw")


def filters(model, path, columns=None):
    """The kernels of the model's first convolution as a grid of images, one per output
    channel: grey for one input channel, colour for three (RGB), else one row of tiles
    per output channel, one tile per input channel. Each tile is scaled on its own
    (white: its largest weight). Returns the weights drawn, (out, in, kh, kw)."""
    conv = first_conv(model)
    weight = _host(conv.params["weight"])
    out, channels = weight.shape[:2]
    if channels in (1, 3):
        rows, columns = _grid(out, columns)
        fig = _figure(1.1 * columns, 1.1 * rows + 0.4)
        for i in range(out):
            w = weight[i]
            low, high = w.min(), w.max()
            w = (w - low) / (high - low) if high > low else np.zeros_like(w)
            image = w[0] if channels == 1 else np.moveaxis(w, 0, -1)
            _tile(fig.add_subplot(rows, columns, i + 1), image, title=str(i))
    else:
        fig = _figure(1.0 * channels, 1.0 * out + 0.4)
        for i in range(out):
            for c in range(channels):
                _tile(fig.add_subplot(out, channels, i * channels + c + 1), weight[i, c],
                      title=f"{i}/{c}" if i == 0 or c == 0 else None)
    fig.suptitle(f"filters of {conv.name}", fontsize=9)
    fig.savefig(os.fspath(path), dpi=100)
    return weight


# ---------------------------------------------------------------- feature maps


def layer_outputs(model, x):
    """{layer's dotted name ("features.block1.0", "layer2.conv1"): its output} for a batch
    x, host arrays, from one forward pass in eval mode. Works for every kind of model:
    each layer's forward is wrapped for the pass (an instance attribute over the class's
    method, PyTorch's forward hook) and unwrapped after."""
    named = list(model.named_layers())
    outputs = OrderedDict()

    def recording(name, forward):
        def forward_and_record(*args, **kwargs):
            y = forward(*args, **kwargs)
            outputs[name] = np.array(backends.to_host(y))
            return y
        return forward_and_record

    try:
        for name, layer in named:
            layer.forward = recording(name, layer.forward)
        model.predict(x)
    finally:
        for _, layer in named:
            vars(layer).pop("forward", None)
    return outputs


def _shows_maps(layer, y):
    """By default, feature_maps draws what the next layer sees: the output of each layer
    without weights (activations, pooling, merges; Dropout aside, the identity in eval),
    when it is a stack of maps larger than 1x1."""
    return (not layer.params and type(layer).__name__ != "Dropout" and y.ndim == 4
            and y.shape[2] * y.shape[3] > 1)


def feature_maps(model, image, path, max_maps=8, names=None):
    """One image's feature maps through the model: a row per layer, its first max_maps
    channels side by side, after a row with the image itself. image: one example,
    (C, H, W) (or a batch of one). names: the layers to draw, by their dotted names
    (model.named_layers()); by default those that _shows_maps picks: the maps after
    every activation, pooling and merge. Returns {name: its maps (C, H, W)} drawn."""
    x = np.asarray(backends.to_host(image))
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"viz: feature_maps takes one image (C, H, W) or a batch of one, "
                         f"got shape {tuple(np.shape(image))}")
    outputs = layer_outputs(model, x)
    layers = dict(model.named_layers())
    if names is not None:
        unknown = [n for n in names if n not in outputs]
        if unknown:
            raise ValueError(f"viz: {unknown} are not layers of the model "
                             f"({', '.join(outputs)})")
        maps = OrderedDict((n, outputs[n][0]) for n in names if outputs[n].ndim == 4)
    else:
        maps = OrderedDict((n, y[0]) for n, y in outputs.items() if _shows_maps(layers[n], y))
    columns, rows = max(1, max_maps), len(maps) + 1
    fig = _figure(1.0 * columns + 1.4, 1.0 * rows + 0.3)
    _tile(fig.add_subplot(rows, columns, 1), x[0].mean(axis=0), title="input")
    for r, (name, y) in enumerate(maps.items(), 1):
        for c in range(min(max_maps, y.shape[0])):
            ax = fig.add_subplot(rows, columns, r * columns + c + 1)
            _tile(ax, y[c], cmap="viridis")
            if c == 0:
                ax.set_ylabel(f"{name} {type(layers[name]).__name__}\n"
                              f"{'x'.join(map(str, y.shape))}", fontsize=7)
    fig.savefig(os.fspath(path), dpi=100)
    return maps


# ---------------------------------------------------------------- confusion matrix


def confusion(y_true, y_pred, num_classes=None):
    """counts[i, j]: how many examples of class i were predicted as j. y_pred: labels
    (N,) or scores (N, classes), whose arg-max is the prediction."""
    y_true = np.asarray(backends.to_host(y_true)).astype(np.int64).ravel()
    y_pred = np.asarray(backends.to_host(y_pred))
    if y_pred.ndim == 2:
        num_classes = num_classes or y_pred.shape[1]
        y_pred = y_pred.argmax(axis=1)
    y_pred = y_pred.astype(np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"viz: y_true has {y_true.size} labels but y_pred "
                         f"{y_pred.size} predictions")
    if y_true.size and min(y_true.min(), y_pred.min()) < 0:
        raise ValueError("viz: labels must be non-negative class indices")
    num_classes = num_classes or (int(max(y_true.max(), y_pred.max())) + 1 if y_true.size else 0)
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def confusion_matrix(y_true, y_pred, path, labels=None, title=None):
    """The confusion matrix of predictions as a PNG: rows the true classes, columns the
    predicted ones, each cell its count (darker: more). y_pred: labels or scores (what
    model.predict returns). Returns the counts."""
    counts = confusion(y_true, y_pred, len(labels) if labels is not None else None)
    k = counts.shape[0]
    labels = [str(i) for i in range(k)] if labels is None else [str(label) for label in labels]
    fig = _figure(0.45 * k + 2.0, 0.45 * k + 1.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(counts, cmap="Blues")
    for i in range(k):
        for j in range(k):
            dark = counts[i, j] > counts.max() / 2
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    ax.set_xticks(range(k), labels)
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(counts) / max(1, counts.sum())
    ax.set_title(title or f"accuracy {100 * accuracy:.2f}% of {counts.sum():,}", fontsize=9)
    fig.savefig(os.fspath(path), dpi=100)
    return counts


# ---------------------------------------------------------------- rows of images


def image_rows(rows, path, limit=10):
    """Rows of images side by side, e.g. {"original": x, "noisy": x_noisy,
    "reconstructed": model.predict(x_noisy)}: each a batch (N, C, H, W) (one channel,
    or three as colour); its first `limit` images, all on one grey scale (so that a
    reconstruction's contrast compares with the original's)."""
    rows = OrderedDict(rows)
    if not rows:
        raise ValueError("viz: image_rows needs at least one row")
    batches = OrderedDict((name, _host(images)) for name, images in rows.items())
    for name, images in batches.items():
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"viz: row {name!r} must be images (N, 1 or 3, H, W), got shape "
                             f"{images.shape}")
    columns = min(limit, max(len(b) for b in batches.values()))
    low = min(b[:columns].min() for b in batches.values() if b.size)
    high = max(b[:columns].max() for b in batches.values() if b.size)
    fig = _figure(1.0 * columns + 0.8, 1.05 * len(batches) + 0.2)
    for r, (name, images) in enumerate(batches.items()):
        for c in range(min(columns, len(images))):
            image = images[c]
            image = image[0] if image.shape[0] == 1 else np.clip(np.moveaxis(image, 0, -1), 0, 1)
            ax = fig.add_subplot(len(batches), columns, r * columns + c + 1)
            _tile(ax, image, vmin=low, vmax=high)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.savefig(os.fspath(path), dpi=100)
