import numpy as np
import pytest

from cnnreg.models import alexnet, compile_model, vgg16
from cnnreg.registry import lookup


def layer_names(model):
    return [layer.name for layer in model.layers[1:]]


def test_alexnet_lab_parameter_count():
    # Task 1a: base 8, dense 64/64, sigmoid head, 128x128x1.
    assert alexnet((128, 128, 1)).count_params() == 286_193


def test_vgg16_lab_parameter_counts():
    assert vgg16((128, 128, 1), base=32, head="softmax").count_params() == 3_946_082
    assert vgg16((128, 128, 1), base=32, head="sigmoid").count_params() == 3_946_017


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("spatial_dropout", [0.0, 0.1])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_alexnet_layer_order(batch_norm, spatial_dropout, dropout):
    model = alexnet((32, 32, 1), batch_norm=batch_norm, dropout=dropout, spatial_dropout=spatial_dropout)
    expected = []
    for block, pooled in ((1, True), (2, True), (3, False), (4, False), (5, True)):
        expected.append(f"block{block}_conv")
        expected += [f"block{block}_bn"] if batch_norm else []
        expected.append(f"block{block}_relu")
        expected += [f"block{block}_sdrop"] if spatial_dropout else []
        expected += [f"block{block}_pool"] if pooled else []
    expected.append("flatten")
    for unit in (1, 2):
        expected += [f"dense{unit}", f"dense{unit}_relu"] + ([f"dense{unit}_dropout"] if dropout else [])
    expected.append("head")
    assert layer_names(model) == expected
    types = {layer.name: type(layer).__name__ for layer in model.layers}
    assert types["block1_conv"] == "Conv2D" and types["block5_pool"] == "MaxPooling2D"
    if batch_norm:
        assert types["block3_bn"] == "BatchNormalization"
    if spatial_dropout:
        assert types["block3_sdrop"] == "SpatialDropout2D"
        assert model.get_layer("block3_sdrop").rate == spatial_dropout
    if dropout:
        assert model.get_layer("dense2_dropout").rate == dropout


def test_alexnet_filters_follow_base():
    model = alexnet((32, 32, 3), base=64, dense=(128, 64))
    filters = [model.get_layer(f"block{i}_conv").filters for i in range(1, 6)]
    assert filters == [64, 128, 256, 256, 128]
    assert [model.get_layer(n).units for n in ("dense1", "dense2", "head")] == [128, 64, 1]


@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg16_layer_order_and_last_conv_name(batch_norm):
    model = vgg16((32, 32, 1), base=4, batch_norm=batch_norm, spatial_dropout=0.1, dropout=0.4)
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [4, 4, 8, 8, 16, 16, 16, 32, 32, 32, 32, 32, 32]
    assert convs[-1].name == "Last_ConvLayer"
    names = layer_names(model)
    assert names.count("block1_pool") == 1 and sum(n.endswith("_pool") for n in names) == 5
    unit = ["block1_1_conv", "block1_1_relu", "block1_1_sdrop"]
    if batch_norm:
        unit.insert(1, "block1_1_bn")
    assert names[: len(unit)] == unit
    assert model.get_layer("head").units == 2


def test_compile_names_accuracy_alike_for_both_heads():
    x = np.random.default_rng(0).random((8, 16, 16, 1), dtype="float32")
    y = np.array([0, 1] * 4)
    base = {
        "model": "alexnet", "image_size": [16, 16], "channels": 1, "base": 2, "dense": [4],
        "batch_norm": False, "dropout": 0.0, "spatial_dropout": 0.0, "optimizer": "adam", "lr": 1e-3,
    }  # fmt: skip
    for head in ("sigmoid", "softmax"):
        model = compile_model(lookup("alexnet").build({**base, "head": head}, (16, 16, 1)), {**base, "head": head})
        labels = y.reshape(-1, 1).astype("float32") if head == "sigmoid" else y
        history = model.fit(x, labels, validation_data=(x, labels), epochs=1, verbose=0).history
        assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert model.optimizer.learning_rate.numpy() == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"head": "relu"}, "head expects one of sigmoid, softmax"),
        ({"dropout": 1.0}, r"dropout expects a rate in \[0, 1\)"),
        ({"base": 0}, "base expects a positive number of filters"),
    ],
)
def test_builders_validate_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        alexnet((32, 32, 1), **kwargs)
