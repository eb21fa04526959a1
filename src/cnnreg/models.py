"""The lab's CNN builders, with the functional API (Grad-CAM needs layer outputs): AlexNet, VGG16
and the transfer head on VGG16 features; and compiling a model for a run.

`cnnreg.registry` says which builder each model name uses and which run parameters it takes.
With ``mixed_precision`` a model is built under Keras' ``mixed_float16`` policy (`build_in_precision`)
and its loss is scaled; the head computes in float32 whatever the policy.

Every convolution is 3×3 with ``padding="same"``; batch normalisation sits between a convolution and
its ReLU; spatial dropout follows the ReLU (before pooling); dropout follows the ReLU of each hidden
dense layer.
"""

import keras
from keras import layers

from cnnreg.parameters import PARAMETERS

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}

#: (filters as multiples of ``base``, pool after the block) for each AlexNet block.
ALEXNET_BLOCKS = ((1, True), (2, True), (4, False), (4, False), (2, True))
#: (number of convs, filters as multiples of ``base``) per VGG16 block; every block is pooled.
VGG16_BLOCKS = ((2, 1), (2, 2), (3, 4), (3, 8), (3, 8))
LAST_CONV = "Last_ConvLayer"


def _check(input_shape, **values):
    """The builders' arguments, checked as the run parameters they are (`cnnreg.parameters`)."""
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}")
    for name, value in values.items():
        PARAMETERS[name].check(list(value) if name == "dense" else value)


def conv_unit(x, filters, name, batch_norm, spatial_dropout, conv_name=None):
    """Conv(3×3, same) → [BN] → ReLU → [SpatialDropout2D]."""
    x = layers.Conv2D(filters, 3, padding="same", name=conv_name or f"{name}_conv")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    if spatial_dropout:
        x = layers.SpatialDropout2D(spatial_dropout, name=f"{name}_sdrop")(x)
    return x


def classifier(x, dense, dropout, head):
    """Flatten → (Dense → ReLU → [Dropout]) per hidden layer → the output head."""
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(dense, start=1):
        x = layers.Dense(units, name=f"dense{i}")(x)
        x = layers.Activation("relu", name=f"dense{i}_relu")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dense{i}_dropout")(x)
    units = 1 if head == "sigmoid" else 2
    return layers.Dense(units, activation=head, name="head", dtype="float32")(x)


def alexnet(
    input_shape,
    base=8,
    dense=(64, 64),
    head="sigmoid",
    batch_norm=False,
    dropout=0.0,
    spatial_dropout=0.0,
):
    """The lab's AlexNet: five conv blocks (b, 2b, 4b, 4b, 2b filters), pooling after 1, 2 and 5.

    Parameters
    ----------
    input_shape : tuple of int
        (height, width, channels).
    base : int
        Filters of the first block.
    dense : sequence of int
        Units of the hidden dense layers.
    head : {'sigmoid', 'softmax'}
        One sigmoid unit or two softmax units.
    batch_norm : bool
        Batch normalisation after every convolution, before its ReLU.
    dropout, spatial_dropout : float
        Rates in [0, 1); 0 leaves the layer out.

    Returns
    -------
    keras.Model
    """
    _check(input_shape, base=base, dense=dense, head=head, dropout=dropout, spatial_dropout=spatial_dropout)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for i, (multiple, pooled) in enumerate(ALEXNET_BLOCKS, start=1):
        x = conv_unit(x, base * multiple, f"block{i}", batch_norm, spatial_dropout)
        if pooled:
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    return keras.Model(inputs, classifier(x, dense, dropout, head), name="alexnet")


def vgg16(
    input_shape,
    base=32,
    dense=(64, 64),
    head="softmax",
    batch_norm=False,
    dropout=0.0,
    spatial_dropout=0.0,
):
    """The lab's VGG16: blocks of 2, 2, 3, 3, 3 convs (b, 2b, 4b, 8b, 8b), each block pooled.

    The last convolution is named ``Last_ConvLayer`` for Grad-CAM. Parameters as in `alexnet`.
    """
    _check(input_shape, base=base, dense=dense, head=head, dropout=dropout, spatial_dropout=spatial_dropout)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for i, (convs, multiple) in enumerate(VGG16_BLOCKS, start=1):
        for j in range(1, convs + 1):
            last = i == len(VGG16_BLOCKS) and j == convs
            x = conv_unit(
                x,
                base * multiple,
                f"block{i}_{j}",
                batch_norm,
                spatial_dropout,
                conv_name=LAST_CONV if last else None,
            )
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    return keras.Model(inputs, classifier(x, dense, dropout, head), name="vgg16")


def transfer_head(feature_shape, dense=(128,), dropout=0.5):
    """The lab's new head on VGG16 features: Flatten → Dense(128) → ReLU → Dropout(0.5) → Dense(1, sigmoid).

    Parameters
    ----------
    feature_shape : tuple of int
        Shape of one feature block, (h, w, 512).
    dense : sequence of one int
        Units of the hidden dense layer.
    dropout : float
        Dropout rate after its ReLU, in [0, 1); 0 leaves the Dropout layer out.

    Returns
    -------
    keras.Model
        Uncompiled functional model named ``transfer_head``; layers ``flatten``, ``dense1``,
        ``dense1_relu``, ``dense1_dropout``, ``head`` (as `classifier` names them).
    """
    feature_shape = tuple(int(side) for side in feature_shape)
    if len(feature_shape) != 3 or min(feature_shape) < 1:
        raise ValueError(f"feature_shape must be (h, w, channels) of positive ints, got {feature_shape}")
    _check(feature_shape, dense=dense, dropout=dropout)
    if len(dense) != 1:
        raise ValueError(f"dense must give the units of one hidden layer, got {list(dense)}")
    inputs = keras.Input(shape=feature_shape, name="features")
    return keras.Model(inputs, classifier(inputs, dense, dropout, "sigmoid"), name="transfer_head")


def build_in_precision(build, mixed_precision):
    """The model ``build()`` returns; with `mixed_precision`, its layers compute in float16 and
    keep float32 variables (Keras' ``mixed_float16`` policy).

    The policy is set for the call only. Keras keeps its default policy per thread, so models
    built afterwards, or meanwhile in other threads, are float32.

    Raises
    ------
    ValueError
        If a mixed-precision model's output is not float32 (its loss would be computed in
        float16); the lab's heads are float32.
    """
    if not mixed_precision:
        return build()
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build()
    finally:
        keras.config.set_dtype_policy(before)
    if model.output.dtype != "float32":
        raise ValueError(
            f"model {model.name} outputs {model.output.dtype} under mixed precision; give its last layer "
            "dtype='float32'"
        )
    return model


def compile_model(model, params, steps_per_execution=1):
    """Compile with the run's optimizer, the loss of its head and its XLA setting.

    The accuracy metric is named ``accuracy`` whatever the head, so histories compare. XLA is on
    only with ``jit_compile`` (Keras' own default turns it on for some GPU models), and the loss
    is scaled with ``mixed_precision``; both default to off. `steps_per_execution` is Keras'
    (`cnnreg.execution`).

    Raises
    ------
    ValueError
        If ``jit_compile`` is true but Keras compiled without XLA, as it does while TensorFlow's
        op determinism is on (`cnnreg.train.configure_tensorflow`): XLA has no deterministic
        gradient of max pooling, so Keras does not try.
    """
    if params["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {params['optimizer']!r}")
    if params["head"] == "sigmoid":
        loss = keras.losses.BinaryCrossentropy()
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    optimizer = OPTIMIZERS[params["optimizer"]](learning_rate=params["lr"])
    if params.get("mixed_precision", False):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    jit_compile = params.get("jit_compile", False)
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=[accuracy],
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    if model.jit_compile != jit_compile:
        raise ValueError(
            "jit_compile: Keras compiled without XLA, which it does while TensorFlow's op determinism is on "
            "(exact resume needs it; XLA has no deterministic max-pooling gradient)"
        )
    return model
