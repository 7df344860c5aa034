"""The seed MNIST CNN: two 3x3 convolutions with ReLU and 2x2 max pooling, one linear
layer, softmax cross-entropy, Adam. Trains on real digits and reports the held-out
accuracy (about 99 % after 15 epochs on the 8,000 / 2,000 split).

    python examples/mnist_cnn.py [--data DIR] [--epochs 15] [--augment] [--threads 2]
    mpiexec -n 2 python examples/mnist_cnn.py --distributed     # data-parallel on 2 ranks

Writes runs/mnist_cnn.npz (the best epoch's model; fastcnn.model.load reads it
back) and runs/mnist_cnn.png (loss and accuracy per epoch).
"""

from fastcnn.model import Sequential
from fastcnn.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, SoftmaxCrossEntropy
from fastcnn.optim import Adam
from mnist_common import options, setup, train


def main():
    args = options(__doc__.split("\n\n")[0], epochs=15, batch_size=100, lr=1e-3)
    setup(args)
    model = Sequential(
        Conv2d(1, 32, 3, padding=1), ReLU(), MaxPool2d(2),    # 32 x 14 x 14
        Conv2d(32, 64, 3, padding=1), ReLU(), MaxPool2d(2),   # 64 x 7 x 7
        Flatten(), Linear(64 * 7 * 7, 10),
    )
    model.compile(optimizer=Adam(model.parameters(), lr=args.lr), loss=SoftmaxCrossEntropy())
    train(model, args, "mnist_cnn")


if __name__ == "__main__":
    main()
