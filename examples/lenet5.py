"""LeNet-5 (LeCun et al., 1998) on real MNIST digits: 5x5 convolutions, tanh, average
pooling, three fully connected layers.

    python examples/lenet5.py [--data DIR] [--epochs 15] [--threads 2]

Writes runs/lenet5.npz (the best epoch's model) and runs/lenet5.png.
"""

from fastcnn.model import Sequential
from fastcnn.nn import AvgPool2d, Conv2d, Flatten, Linear, SoftmaxCrossEntropy, Tanh
from fastcnn.optim import Adam
from mnist_common import options, setup, train


def main():
    args = options(__doc__.split("\n\n")[0], epochs=15, batch_size=100, lr=1e-3)
    setup(args)
    model = Sequential(
        Conv2d(1, 6, 5, padding=2), Tanh(), AvgPool2d(2),     # 6 x 14 x 14
        Conv2d(6, 16, 5), Tanh(), AvgPool2d(2),               # 16 x 5 x 5
        Flatten(),
        Linear(16 * 5 * 5, 120), Tanh(),
        Linear(120, 84), Tanh(),
        Linear(84, 10),
    )
    model.compile(optimizer=Adam(model.parameters(), lr=args.lr), loss=SoftmaxCrossEntropy())
    train(model, args, "lenet5")


if __name__ == "__main__":
    main()
