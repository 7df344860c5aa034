"""What the MNIST examples share: options, the real digits with their fixed split, and the
training run (progress bar, checkpoint of the best epoch, plot).

With --distributed, run under MPI (mpiexec -n 2 python examples/mnist_cnn.py
--distributed): every rank runs this same code on its shard of the digits; rank 0
alone prints, checkpoints and plots."""

import argparse
import time
from pathlib import Path

import fastcnn
from fastcnn import distributed, init
from fastcnn.data import (MNIST_MEAN, MNIST_STD, Compose, DataLoader, RandomRotation,
                          RandomShift, load_mnist, normalize)
from fastcnn.model import ModelCheckpoint

REPO = Path(__file__).resolve().parent.parent
HELD_OUT = 2000     # the last 2,000 digits: the fixed split's held-out part


def default_data_dir():
    """../shared/data/mnist beside the repository (or beside a folder above it)."""
    for folder in [REPO] + list(REPO.parents):
        candidate = folder.parent / "shared" / "data" / "mnist"
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "data" / "mnist"


def options(description, epochs, batch_size, lr, augment=False, more=None, distributed=True):
    """The examples' command line; more(parser), if given, adds an example's own options
    (distributed=False: an example without --distributed)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", type=Path, default=default_data_dir(),
                    help="folder with MNIST IDX files (t10k-images-idx3-ubyte[.gz], "
                         "t10k-labels-idx1-ubyte[.gz]); default: %(default)s")
    ap.add_argument("--kind", default="t10k", help="file prefix: t10k or train")
    ap.add_argument("--train", type=int, default=8000,
                    help="the first TRAIN digits train, the last 2,000 are held out "
                         "(default %(default)s)")
    ap.add_argument("--held-out", type=int, default=None,
                    help="evaluate on only the first HELD_OUT of the held-out digits (a "
                         "quick run)")
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--batch-size", type=int, default=batch_size)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--augment", action=argparse.BooleanOptionalAction, default=augment,
                    help="random shifts (2 px) and rotations (10 degrees) of every batch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="threads of the compiled kernels (default: all cores)")
    ap.add_argument("--out", type=Path, default=REPO / "runs",
                    help="folder for the checkpoint and the plot; default: %(default)s")
    ap.add_argument("--quiet", action="store_true", help="no progress output")
    if distributed:
        ap.add_argument("--distributed", action="store_true",
                        help="data-parallel over the MPI ranks (run with mpiexec -n N); the "
                             "batch size is per rank")
    else:
        ap.set_defaults(distributed=False)
    if more is not None:
        more(ap)
    return ap.parse_args()


def digits(args, raw=False):
    """(train, held_out): (x, y) pairs of the fixed split: the last 2,000 digits are held
    out, the first --train digits train (of MNIST's test set, the first 8,000); x
    normalised with MNIST's mean and deviation (raw=True: left in [0, 1])."""
    x, y = load_mnist(args.data, args.kind)
    if not raw:
        x = normalize(x, MNIST_MEAN, MNIST_STD)
    split = len(x) - HELD_OUT if len(x) > HELD_OUT else len(x) // 2
    if not 0 < args.train <= split:
        raise SystemExit(f"--train must be between 1 and {split}, got {args.train}")
    held = slice(split, None if args.held_out is None else split + args.held_out)
    return (x[:args.train], y[:args.train]), (x[held], y[held])


def setup(args):
    if args.distributed:    # first: with several ranks, it gives each its share of the cores
        distributed.init()
    if args.threads:
        fastcnn.set_num_threads(args.threads)
    init.seed(args.seed)


def train(model, args, name, callbacks=()):
    """Fit on the training digits, report on the held-out ones, save the best epoch and
    the loss/accuracy plot under args.out."""
    main = not args.distributed or distributed.is_main()
    say = print if main else (lambda *a, **k: None)
    (x, y), held_out = digits(args)
    say(f"{len(x):,} training digits, {len(held_out[0]):,} held out, from {args.data}")
    if args.distributed:
        ranks = distributed.world_size()
        say(f"{ranks} ranks, {fastcnn.get_num_threads()} thread(s) each, batches of "
            f"{args.batch_size} a rank ({args.batch_size * ranks} a step)")
    say(model.summary((1, 28, 28)))
    augment = Compose([RandomRotation(10), RandomShift(2)]) if args.augment else None
    batches = DataLoader((x, y), batch_size=args.batch_size, shuffle=True, seed=args.seed,
                         transform=augment)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.out / f"{name}.npz"
    start = time.perf_counter()
    history = model.fit(batches, epochs=args.epochs, val=held_out, verbose=0 if args.quiet else 1,
                        callbacks=[ModelCheckpoint(checkpoint, monitor="val_accuracy",
                                                   save_best_only=True), *callbacks],
                        distributed=args.distributed)
    elapsed = time.perf_counter() - start
    accuracy = history["val_accuracy"]
    best = max(range(len(accuracy)), key=accuracy.__getitem__)
    say(f"held-out accuracy: {100 * accuracy[-1]:.2f}% after {len(accuracy)} epochs, best "
        f"{100 * accuracy[best]:.2f}% (epoch {best + 1}); {elapsed:.0f} s in all, "
        f"{sum(history['time']) / len(accuracy):.1f} s per training epoch")
    say(f"best epoch's model: {checkpoint}")
    if not main:
        return history
    try:
        history.plot(args.out / f"{name}.png")
        print(f"loss and accuracy plot: {args.out / (name + '.png')}")
    except ImportError as e:
        print(f"no plot: {e}")
    return history


def pictures(model, held_out, args, name, labels=None):
    """The first convolution's filters, a held-out digit's feature maps and the held-out
    confusion matrix, as PNGs under args.out (fastcnn.viz; skipped without matplotlib)."""
    from fastcnn import viz
    x, y = held_out
    paths = [args.out / f"{name}_{what}.png" for what in ("filters", "maps", "confusion")]
    try:
        viz.filters(model, paths[0])
        viz.feature_maps(model, x[0], paths[1])
        viz.confusion_matrix(y, model.predict(x), paths[2], labels=labels)
    except ImportError as e:
        print(f"no pictures: {e}")
        return
    print("pictures: " + ", ".join(str(p) for p in paths))
