"""The model registry: for every model, how to build it, what it trains on, which run parameters
it uses, the layer Grad-CAM explains, whether it fine-tunes, and what an epoch costs.

Training, transfer, Grad-CAM, the plan's checks and SLURM's time limits all ask this registry.
A user's own model is named ``package.module:function`` in the config. Its builder is called as
``function(input_shape, **uses)``: the run parameters it uses are the keyword parameters of its
signature that are run parameters (``dropout``, ``dense``, ...), and it may name the layer
Grad-CAM explains in an attribute ``explains`` (e.g. ``resnet18.explains = "conv5_relu"``).
Nothing here imports Keras, so that a Snakefile that names only the lab's models parses quickly.
"""

import importlib
import inspect
import os
import sys
from dataclasses import dataclass

#: Parameters every model uses: what it trains on, how, and for how long.
TRAINING_PARAMETERS = (
    "model", "dataset", "seed", "head", "lr", "optimizer", "batch_size", "epochs", "image_size", "channels",
    "class_weight", "folds", "fold", "jit_compile", "mixed_precision",
)  # fmt: skip
#: Parameters of the fine-tuning stage (models with ``fine_tunes``).
FINE_TUNING_PARAMETERS = ("fine_tune", "fine_tune_lr")


@dataclass(frozen=True)
class ModelSpec:
    """What the workflow knows about one model.

    Attributes
    ----------
    name : str
        As written in the config.
    builder : str
        ``module:function`` called as ``function(input_shape, **uses)``; returns an uncompiled
        ``keras.Model`` whose output matches the run's ``head``.
    uses : tuple of str
        Run parameters the builder reads, beyond `TRAINING_PARAMETERS`.
    inputs : {'images', 'features'}
        Images (augmented as the run's ``augment`` says), or ImageNet VGG16 features cached once
        per dataset (`cnnreg.transfer`).
    explains : str or None
        The layer Grad-CAM explains; None: the model cannot be explained.
    fine_tunes : bool
        Whether the model has a fine-tuning stage (``fine_tune`` epochs of VGG16's block 5).
    dense_layers : int or None
        How many hidden dense layers the builder takes (None: as many as ``dense`` lists).
    heads : tuple of str
        The heads it can train (``sigmoid``: one unit and binary cross-entropy; ``softmax``: two).
    min_side : int
        Smallest image side the model accepts (``2 ** poolings``).
    epoch_seconds : float
        Generous GPU seconds per epoch of 1000 images at 128x128 and ``reference_base``; only
        used to size SLURM time limits.
    reference_base : int
        The ``base`` that `epoch_seconds` is measured at (wider models cost more).
    """

    name: str
    builder: str
    uses: tuple
    inputs: str = "images"
    explains: str | None = None
    fine_tunes: bool = False
    dense_layers: int | None = None
    heads: tuple = ("sigmoid", "softmax")
    min_side: int = 1
    epoch_seconds: float = 30.0
    reference_base: int = 1

    @property
    def parameters(self):
        """Every run parameter the model uses."""
        stages = FINE_TUNING_PARAMETERS if self.fine_tunes else ()
        augment = ("augment",) if self.inputs == "images" else ()
        return tuple(dict.fromkeys((*TRAINING_PARAMETERS, *self.uses, *augment, *stages)))

    def build(self, params, input_shape):
        """The uncompiled model for a run's parameters and the shape of one input."""
        return builder_function(self.builder)(tuple(input_shape), **{name: params[name] for name in self.uses})

    def epoch_cost(self, params):
        """Estimated GPU seconds of one epoch of this run (per 1000 images)."""
        height, width = params["image_size"]
        wider = max(1.0, params.get("base", self.reference_base) / self.reference_base)
        return self.epoch_seconds * height * width / 128**2 * wider


#: Run parameters a builder may take: what shapes the network.
BUILDER_PARAMETERS = ("base", "dense", "head", "batch_norm", "dropout", "spatial_dropout")
LAB_MODELS = {
    "alexnet": ModelSpec(
        "alexnet", "cnnreg.models:alexnet", BUILDER_PARAMETERS, min_side=8, epoch_seconds=6.0, reference_base=8
    ),
    "vgg16": ModelSpec(
        "vgg16", "cnnreg.models:vgg16", BUILDER_PARAMETERS, explains="block5_3_relu", min_side=32, epoch_seconds=30.0,
        reference_base=32,
    ),
    "vgg16_imagenet": ModelSpec(
        "vgg16_imagenet", "cnnreg.models:transfer_head", ("dense", "dropout"), inputs="features",
        fine_tunes=True, dense_layers=1, heads=("sigmoid",), min_side=32, epoch_seconds=1.0,
    ),
}  # fmt: skip
#: What a fine-tuning epoch costs: images through VGG16, as `vgg16`'s.
FINE_TUNE_EPOCH = LAB_MODELS["vgg16"]


class ModelError(ValueError):
    """A model name that cannot be resolved; the message says why."""


def is_custom(name):
    return ":" in name


def lookup(name):
    """The `ModelSpec` of a lab model or of a user's ``package.module:function``.

    Raises
    ------
    ModelError
        If the name is neither, or a user builder cannot be imported.
    """
    if name in LAB_MODELS:
        return LAB_MODELS[name]
    if not is_custom(name):
        raise ModelError(
            f"unknown model {name!r}; expected one of {sorted(LAB_MODELS)} or your own 'package.module:function'"
        )
    function = builder_function(name)
    uses = tuple(p for p in inspect.signature(function).parameters if p in BUILDER_PARAMETERS)
    return ModelSpec(name, name, uses, explains=getattr(function, "explains", None))


def builder_function(path):
    """Import ``module:function``; the working directory is searched first, as Python does for
    scripts, so that a user's module beside the config is found in every job."""
    module_name, _, function_name = path.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ModelError(f"cannot import the model builder {path!r}: {error}") from None
    if not callable(function):
        raise ModelError(f"the model builder {path!r} is not a function")
    return function


def short_name(name):
    """The name a run id starts with: the function of a user's ``package.module:function``."""
    return name.rpartition(":")[2]
