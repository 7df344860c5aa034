"""Transfer learning on the digits: the seed CNN learns digits 0-4, then its convolutional
base, frozen, serves a new head that learns digits 5-9 from only 10 labelled examples
each (feature extraction); then the base's top block is unfrozen and fine-tuned with a
smaller learning rate than the head's (parameter groups). The same network trained
from scratch on the same 50 examples is the baseline.

    python examples/transfer.py                  # a few minutes: 3 epochs on digits 0-4
    python examples/transfer.py --epochs 5 --per-digit 20 --head-epochs 40

Prints the held-out accuracy on digits 5-9 of the three ways as a table. The default run
gave 87.1 % from scratch (the best of three learning rates), 86.4 % with the frozen base
and 86.2 % fine-tuned: on digits, 50 examples already teach the small CNN most of what
the base knows, so feature extraction does not win by much, if at all (a base trained 6
epochs: 89.6 % frozen; a base trained 5 epochs on shifted and rotated digits, the 50
examples shifted and rotated too: 93.2 % frozen against 92.3 % from scratch, each the
better of two learning rates). Writes the
base's weights as a state_dict (runs/transfer_base.npz, PyTorch's key names:
"features.block1.0.weight", ...), loaded into the new model the way a PyTorch
checkpoint would be, and runs/transfer_{filters,maps,confusion}.png.
"""

import time
from collections import OrderedDict

import numpy as np

from fastcnn import init
from fastcnn.data import DataLoader
from fastcnn.model import Sequential
from fastcnn.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, SoftmaxCrossEntropy
from fastcnn.optim import Adam, parameters
from mnist_common import digits, options, pictures, setup

FIRST, SECOND = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)


def network(classes=5):
    """The seed CNN with named parts: a convolutional base of two blocks, and a head."""
    return Sequential(OrderedDict(
        features=Sequential(OrderedDict(
            block1=Sequential(Conv2d(1, 32, 3, padding=1), ReLU(), MaxPool2d(2)),   # 14x14
            block2=Sequential(Conv2d(32, 64, 3, padding=1), ReLU(), MaxPool2d(2)),  # 7x7
            flatten=Flatten())),
        classifier=Linear(64 * 7 * 7, classes)))


def only(data, which, per_digit=None):
    """The examples of the digits `which` (the first per_digit of each, if given), labelled
    0, 1, ... in that order."""
    x, y = data
    keep = np.concatenate([np.flatnonzero(y == d)[:per_digit] for d in which])
    keep.sort()
    labels = np.searchsorted(np.array(which), y[keep])
    return x[keep], labels


def fit(model, lr, data, epochs, batch_size, groups=None, seed=0):
    """Adam on data for epochs (the same order of batches for the same seed); its seconds
    per epoch."""
    model.compile(optimizer=Adam(groups or model.parameters(), lr=lr), loss=SoftmaxCrossEntropy())
    batches = DataLoader(data, batch_size=batch_size, shuffle=True, seed=seed)
    start = time.perf_counter()
    model.fit(batches, epochs=epochs, verbose=0)
    return (time.perf_counter() - start) / epochs


def accuracy(model, data):
    return model.evaluate(data)["accuracy"]


def main():
    def more(ap):
        ap.add_argument("--per-digit", type=int, default=10,
                        help="labelled examples of each digit 5-9 (default %(default)s)")
        ap.add_argument("--head-epochs", type=int, default=30,
                        help="epochs of the new head, the scratch baseline and the fine-tuning")
        ap.add_argument("--scratch-lrs", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3],
                        help="learning rates the from-scratch baseline tries (its best counts)")
    args = options(__doc__.split("\n\n")[0], epochs=3, batch_size=100, lr=1e-3, more=more,
                   distributed=False)
    setup(args)
    train, held_out = digits(args)
    args.out.mkdir(parents=True, exist_ok=True)
    say = (lambda *a: None) if args.quiet else print

    # 1. The base learns digits 0-4 on all their training examples.
    base = network()
    first, first_held = only(train, FIRST), only(held_out, FIRST)
    print(f"digits 0-4: {len(first[0]):,} training examples, {args.epochs} epochs")
    fit(base, args.lr, first, args.epochs, args.batch_size)
    print(f"  held-out accuracy on digits 0-4: {100 * accuracy(base, first_held):.2f}%")
    path = args.out / "transfer_base.npz"
    np.savez(path, **base.state_dict())                  # PyTorch's keys, NumPy arrays

    # 2. Feature extraction: the base's weights in a new model, frozen; a new head.
    few, second_held = only(train, SECOND, args.per_digit), only(held_out, SECOND)
    print(f"digits 5-9: {len(few[0])} labelled training examples ({args.per_digit} a digit), "
          f"{len(second_held[0]):,} held out; {args.head_epochs} epochs each")
    model = network()
    saved = np.load(path)
    features = {k: saved[k] for k in saved.files if k.startswith("features.")}
    missing, _ = model.load_state_dict(features, strict=False)   # the old head left out
    say(f"  loaded {len(features)} arrays of {path.name}; new: {', '.join(missing)}")
    model.features.freeze()
    frozen_time = fit(model, args.lr, few, args.head_epochs, 10)
    frozen = accuracy(model, second_held)
    say(model.summary((1, 28, 28)))

    # 3. The baseline: the same network from scratch on the same 50 examples.
    scratch = {}
    for lr in args.scratch_lrs:
        init.seed(args.seed)
        alone = network()
        scratch_time = fit(alone, lr, few, args.head_epochs, 10)
        scratch[lr] = accuracy(alone, second_held)
        say(f"  from scratch, lr {lr:g}: {100 * scratch[lr]:.2f}%")
    best_lr = max(scratch, key=scratch.get)

    # 4. Fine-tuning: the top block trains again, ten times slower than the head.
    model.features.block2.unfreeze()
    groups = [{"params": model.features.block2.parameters(), "lr": args.lr / 10},
              {"params": parameters(model.classifier)}]
    fit(model, args.lr, few, args.head_epochs, 10, groups)
    tuned = accuracy(model, second_held)

    print(f"\nheld-out accuracy on digits 5-9 ({len(second_held[0]):,} digits), trained on "
          f"{len(few[0])} examples:")
    rows = [("from scratch", scratch[best_lr], f"best of lr {args.scratch_lrs}: {best_lr:g}"),
            ("frozen base, new head", frozen, f"lr {args.lr:g}"),
            ("fine-tuned top block", tuned, f"block2 lr {args.lr / 10:g}, head {args.lr:g}")]
    for name, value, note in rows:
        print(f"  {name:<22} {100 * value:6.2f}%   {note}")
    print(f"frozen base against from scratch: {100 * (frozen - scratch[best_lr]):+.1f} "
          f"points; an epoch of the frozen base's head took {frozen_time:.3f} s, of the "
          f"whole network {scratch_time:.3f} s")
    pictures(model, second_held, args, "transfer", labels=SECOND)


if __name__ == "__main__":
    main()
