"""fastcnn.viz: each picture is written as a PNG and returns what it drew."""

import numpy as np
import pytest

from fastcnn import nn, viz
from fastcnn.model import Input, Model, Sequential

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


def small_cnn(in_channels=1):
    return Sequential(nn.Conv2d(in_channels, 4, 3, padding=1, rng=0), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1, rng=1), nn.ReLU(),
                      nn.Flatten(), nn.Linear(6 * 4 * 4, 3, rng=2))


@pytest.mark.parametrize("in_channels", [1, 3, 2])
def test_filters(tmp_path, in_channels):
    model = small_cnn(in_channels)
    weight = viz.filters(model, tmp_path / "filters.png")
    assert is_png(tmp_path / "filters.png")
    np.testing.assert_array_equal(weight, model.layers[0].params["weight"])


def test_feature_maps_of_every_kind_of_model(tmp_path):
    image = np.random.default_rng(0).random((1, 8, 8)).astype(np.float32)
    model = small_cnn()
    maps = viz.feature_maps(model, image, tmp_path / "seq.png", max_maps=3)
    assert is_png(tmp_path / "seq.png")
    assert list(maps) == ["1", "2", "4"]        # after the ReLUs and the pooling
    outputs = viz.layer_outputs(model, image[None])
    assert list(outputs) == [str(i) for i in range(7)] and maps["4"].shape == (6, 4, 4)
    np.testing.assert_allclose(maps["1"], np.maximum(outputs["0"][0], 0))
    np.testing.assert_array_equal(outputs["6"], model.predict(image[None]))
    assert "forward" not in vars(model.layers[0])     # the recording is undone

    x = Input((1, 8, 8))
    h = nn.Conv2d(1, 4, 3, padding=1, rng=0)(x, name="conv")
    block = nn.Residual(Sequential(nn.Conv2d(4, 4, 3, padding=1, rng=2), nn.ReLU()))
    y = nn.ReLU()(nn.Add()([block(h, name="res"), nn.Conv2d(1, 4, 1, rng=1)(x, name="skip")]),
                  name="out")
    graph = Model(x, y)
    maps = viz.feature_maps(graph, image[None], tmp_path / "graph.png")
    assert is_png(tmp_path / "graph.png") and list(maps) == ["res.body.1", "add", "out"]
    maps = viz.feature_maps(graph, image, tmp_path / "graph.png", names=["conv", "out"])
    assert list(maps) == ["conv", "out"]
    with pytest.raises(ValueError, match=r"\['nowhere'\] are not layers"):
        viz.feature_maps(graph, image, tmp_path / "bad.png", names=["nowhere"])
    with pytest.raises(ValueError, match="one image"):
        viz.feature_maps(graph, np.zeros((2, 1, 8, 8)), tmp_path / "bad.png")


def test_confusion_matrix(tmp_path):
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    scores = np.eye(3)[[0, 1, 1, 1, 2, 0, 2]]
    counts = viz.confusion_matrix(y_true, scores, tmp_path / "confusion.png")
    assert is_png(tmp_path / "confusion.png")
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    np.testing.assert_array_equal(viz.confusion(y_true, scores.argmax(1), 4)[:3, :3], counts)
    with pytest.raises(ValueError, match="7 labels but y_pred 2"):
        viz.confusion(y_true, [0, 1])


def test_image_rows(tmp_path):
    x = np.random.default_rng(1).random((4, 1, 6, 6))
    viz.image_rows({"original": x, "doubled": 2 * x}, tmp_path / "rows.png")
    assert is_png(tmp_path / "rows.png")
    with pytest.raises(ValueError, match="row 'flat' must be images"):
        viz.image_rows({"flat": x.reshape(4, 36)}, tmp_path / "bad.png")
