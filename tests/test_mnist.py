"""Training on real handwritten digits (the MNIST test set kept outside the repository,
split as its README says: the first 8,000 train, the last 2,000 are held out)."""

import numpy as np

import fastcnn.functional as F
from fastcnn import init, nn
from fastcnn.data import MNIST_MEAN, MNIST_STD, DataLoader, normalize
from fastcnn.model import Sequential
from fastcnn.optim import Adam
from mnist_data import mnist


def seed_cnn():
    """The seed MNIST CNN of the examples."""
    model = Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Flatten(), nn.Linear(3136, 10))
    return model.compile(Adam(model.parameters(), lr=1e-3), nn.SoftmaxCrossEntropy())


def test_a_small_model_overfits_64_digits():
    x, y = mnist()
    x, y = x[:64], y[:64]
    init.seed(0)
    model = Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Flatten(), nn.Linear(8 * 14 * 14, 10))
    model.compile(Adam(model.parameters(), lr=3e-3), nn.SoftmaxCrossEntropy())
    for _ in range(60):
        loss, correct = model.train_step(x, y)
    assert correct == 64 and loss < 0.05
    assert F.count_correct(model.predict(x), y) == 64


def test_short_training_on_real_digits():
    """1,000 digits, 2 epochs: the held-out accuracy already beats 85 %."""
    x, y = mnist()
    x = normalize(x, MNIST_MEAN, MNIST_STD)
    init.seed(0)
    model = seed_cnn()
    train = DataLoader((x[:1000], y[:1000]), batch_size=16, shuffle=True, seed=0)
    history = model.fit(train, epochs=2, val=(x[8000:], y[8000:]), verbose=0)
    assert history["val_accuracy"][-1] > 0.85, history.history
    assert np.isfinite(history["loss"]).all() and history["loss"][1] < history["loss"][0]
