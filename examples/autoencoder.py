"""A convolutional autoencoder on the digits, and its denoising variant: an encoder of
convolutions and 2x2 max pooling squeezes a 28x28 digit into 8 maps of 7x7 (392 numbers
for 784 pixels), a decoder of nearest-neighbour Upsample and convolutions draws it back;
trained with the mean squared error between the output and the clean digit. The
denoising one sees each digit with fresh Gaussian noise every epoch and must draw it clean.

    python examples/autoencoder.py                   # a short run: 2 epochs of each
    python examples/autoencoder.py --epochs 6        # both meet the target
    python examples/autoencoder.py --variant denoising --noise 0.5 --code-channels 4

Prints the held-out reconstruction MSE against the MSE of predicting the mean training
image for every digit (the target: at most a fifth of it). With --epochs 6, against the
mean image's 0.0714: plain 0.0071 (0.10 of it), denoising 0.0127 (0.18; the noisy
inputs themselves are at 0.0794); with a code of 4 maps, 0.0090 and 0.0157 (0.22).

Writes runs/autoencoder.npz and runs/autoencoder_denoising.npz (model.encoder gives the
codes) and runs/autoencoder.png: held-out originals, their noisy versions and the
reconstructions.
"""

import time
from collections import OrderedDict

import numpy as np

from fastcnn.data import DataLoader
from fastcnn.model import Sequential
from fastcnn.nn import MSE, Conv2d, MaxPool2d, ReLU, Upsample
from fastcnn.optim import Adam
from mnist_common import digits, options, setup


def autoencoder(code_channels=8):
    """The code and the output are linear: no code channel can die (a ReLU's zero), and
    no output pixel can stick at a sigmoid's flat end, where MSE has no gradient left
    (a sigmoid output sometimes settles at all-black digits and stays there)."""
    encoder = Sequential(Conv2d(1, 16, 3, padding=1), ReLU(), MaxPool2d(2),         # 16x14x14
                         Conv2d(16, code_channels, 3, padding=1), MaxPool2d(2))     # 8x7x7
    decoder = Sequential(Upsample(scale_factor=2),                                   # 8x14x14
                         Conv2d(code_channels, 16, 3, padding=1), ReLU(),
                         Upsample(scale_factor=2), Conv2d(16, 1, 3, padding=1))     # 1x28x28
    return Sequential(OrderedDict(encoder=encoder, decoder=decoder))


class Noise:
    """A transform: x plus Gaussian noise of deviation sigma, clipped to [0, 1]."""

    def __init__(self, sigma):
        self.sigma = sigma

    def __call__(self, x, rng):
        noisy = x + self.sigma * rng.standard_normal(x.shape).astype(x.dtype)
        return np.clip(noisy, 0, 1)


def mse(a, b):
    return float(np.mean((np.asarray(a, np.float64) - b) ** 2))


def train(args, x, noise):
    """An autoencoder fitted to reproduce x (from x with noise, if given); its seconds."""
    model = autoencoder(args.code_channels)
    model.compile(optimizer=Adam(model.parameters(), lr=args.lr), loss=MSE())
    batches = DataLoader((x, x), batch_size=args.batch_size, shuffle=True, seed=args.seed,
                         transform=noise)
    start = time.perf_counter()
    model.fit(batches, epochs=args.epochs, verbose=0 if args.quiet else 1)
    return model, time.perf_counter() - start


def main():
    def more(ap):
        ap.add_argument("--variant", choices=["plain", "denoising", "both"], default="both")
        ap.add_argument("--noise", type=float, default=0.4,
                        help="deviation of the denoising variant's noise (default %(default)s)")
        ap.add_argument("--code-channels", type=int, default=8,
                        help="maps of 7x7 in the code (default %(default)s)")
    args = options(__doc__.split("\n\n")[0], epochs=2, batch_size=64, lr=2e-3, more=more,
                   distributed=False)
    setup(args)
    (x, _), (x_held, _) = digits(args, raw=True)        # pixels in [0, 1]
    args.out.mkdir(parents=True, exist_ok=True)
    mean_image = x.mean(axis=0)
    baseline = mse(np.broadcast_to(mean_image, x_held.shape), x_held)
    noisy_held = Noise(args.noise)(x_held, np.random.default_rng(1))   # one fixed draw
    print(f"{len(x):,} training digits, {len(x_held):,} held out; predicting the mean "
          f"training image: held-out MSE {baseline:.4f} (the target: at most "
          f"{baseline / 5:.4f})")
    variants = ["plain", "denoising"] if args.variant == "both" else [args.variant]
    rows = OrderedDict(original=x_held[:10])
    if "denoising" in variants:
        rows[f"noisy ({args.noise:g})"] = noisy_held[:10]
    for variant in variants:
        denoising = variant == "denoising"
        model, seconds = train(args, x, Noise(args.noise) if denoising else None)
        given = noisy_held if denoising else x_held
        out = np.clip(model.predict(given), 0, 1)     # pixels: the output is linear
        error = mse(out, x_held)
        name = "autoencoder_denoising" if denoising else "autoencoder"
        model.save(args.out / f"{name}.npz")
        extra = f" (the noisy input's own MSE: {mse(noisy_held, x_held):.4f})" \
            if denoising else ""
        print(f"{variant}: held-out MSE {error:.4f} = {error / baseline:.3f} of the "
              f"mean image's{extra}; {args.epochs} epochs, {seconds / args.epochs:.1f} s "
              f"each; {'met' if error <= baseline / 5 else 'NOT met'}")
        rows[f"{variant} output"] = out[:10]
    try:
        from fastcnn import viz
        viz.image_rows(rows, args.out / "autoencoder.png")
        print(f"originals and reconstructions: {args.out / 'autoencoder.png'}")
    except ImportError as e:
        print(f"no picture: {e}")


if __name__ == "__main__":
    main()
