"""The deeper MNIST CNN: three 3x3 convolutions (32, 64, 128 channels) with ReLU and max
pooling, then Linear 2048 -> 625 -> 10 with dropout, on real digits.

    python examples/mnist_deep.py [--data DIR] [--epochs 15] [--augment] [--threads 2]

Writes runs/mnist_deep.npz (the best epoch's model) and runs/mnist_deep.png.
"""

from fastcnn.model import Sequential
from fastcnn.nn import (Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU,
                        SoftmaxCrossEntropy)
from fastcnn.optim import Adam
from mnist_common import options, setup, train


def main():
    args = options(__doc__.split("\n\n")[0], epochs=15, batch_size=100, lr=1e-3)
    setup(args)
    model = Sequential(
        Conv2d(1, 32, 3, padding=1), ReLU(), MaxPool2d(2),                # 32 x 14 x 14
        Conv2d(32, 64, 3, padding=1), ReLU(), MaxPool2d(2),               # 64 x 7 x 7
        Conv2d(64, 128, 3, padding=1), ReLU(), MaxPool2d(2, padding=1),   # 128 x 4 x 4
        Flatten(),
        Linear(128 * 4 * 4, 625), ReLU(), Dropout(0.5),
        Linear(625, 10),
    )
    model.compile(optimizer=Adam(model.parameters(), lr=args.lr), loss=SoftmaxCrossEntropy())
    train(model, args, "mnist_deep")


if __name__ == "__main__":
    main()
