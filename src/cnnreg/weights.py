"""Where the VGG16 ImageNet weights live, how to stage them, and random stand-ins for them.

Compute nodes are usually offline, so the weights file is given explicitly (config key
``imagenet_weights``); ``"imagenet"`` means the file Keras itself caches
(:func:`default_weights_path`). Stage it on a machine with internet with ``python -m cnnreg.weights
stage`` and copy it over. ``python -m cnnreg.weights random PATH`` writes randomly initialised (not
ImageNet) weights for tests and offline demos; :func:`is_imagenet` tells the two apart by md5.
`cnnreg.transfer` loads the file into VGG16. Keras is imported only where it is used: the workflow
resolves the weights path while it builds its job graph (in every job too), without TensorFlow.
"""

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

from cnnreg.atomic import write_atomic

__all__ = [
    "CONFIG_KEY",
    "IMAGENET_MD5",
    "STAGE_COMMAND",
    "WEIGHTS_FILE",
    "default_weights_path",
    "file_md5",
    "is_imagenet",
    "main",
    "missing_weights_message",
    "resolve_weights_path",
    "stage_weights",
    "write_random_weights",
]

#: The file Keras downloads for ``VGG16(weights="imagenet", include_top=False)``, and its md5.
WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_MD5 = "6d6bbae143d832006294945121d1f1fc"
#: The config key that names the weights file.
CONFIG_KEY = "imagenet_weights"
#: Run on a machine with internet: downloads the weights into Keras' cache and prints the path.
STAGE_COMMAND = "python -m cnnreg.weights stage"


# --- where the weights are -------------------------------------------------------------------


def default_weights_path():
    """Where Keras caches the ImageNet VGG16 notop weights on this machine.

    Mirrors Keras 3: ``$KERAS_HOME`` if set, else ``~/.keras`` (``/tmp/.keras`` when the home folder
    is not writable); and, as ``keras.utils.get_file`` does, ``/tmp/.keras`` when that folder is not
    writable. The file lies in its ``models/`` subfolder.

    Returns
    -------
    Path
        ``<keras home>/models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``.
    """
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    home = os.path.expanduser(home)
    if not _writable(home):
        home = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(home) / "models" / WEIGHTS_FILE


def _writable(folder):
    # Keras creates its home folder at import when it can, so a missing folder that could be
    # created counts as writable.
    folder = Path(folder)
    while not folder.exists():
        if folder.parent == folder:
            return False
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK)


def resolve_weights_path(value):
    """The weights file a config value names.

    Parameters
    ----------
    value : str, path-like or None
        ``"imagenet"`` or None for Keras' cached file (:func:`default_weights_path`), otherwise a
        path; ``~`` and environment variables in it are expanded.

    Returns
    -------
    Path
    """
    if value is None or (isinstance(value, str) and value == "imagenet"):
        return default_weights_path()
    return Path(os.path.expandvars(os.path.expanduser(os.fspath(value))))


def missing_weights_message(path, config_key=CONFIG_KEY):
    """What to tell a user whose weights file is missing.

    Parameters
    ----------
    path : str or path-like
        The missing file.
    config_key : str
        The config key that names the file.

    Returns
    -------
    str
        Which file is missing, which key sets it, how to stage it and where to copy it.
    """
    path = Path(path)
    return (
        f"VGG16 weights file {path} does not exist (config key '{config_key}'; its value \"imagenet\" "
        f"means Keras' cache, here {default_weights_path()}). To get the ImageNet weights "
        f"({WEIGHTS_FILE}, md5 {IMAGENET_MD5}), run `{STAGE_COMMAND}` on a machine with internet; "
        f"it downloads them and prints where it put them. Then copy that file to {path} on this machine "
        f"(e.g. `mkdir -p {path.parent}` here, then `scp <printed path> <this host>:{path}`), "
        f"or set '{config_key}' to wherever you put it."
    )


def file_md5(path):
    """md5 hex digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_imagenet(path):
    """Whether a file is Keras' ImageNet VGG16 notop weights file (by md5).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    """
    return file_md5(path) == IMAGENET_MD5


# --- staging and demo weights ----------------------------------------------------------------


def stage_weights():
    """Download the ImageNet VGG16 notop weights into Keras' cache and check them.

    Goes through ``keras.applications.VGG16(weights="imagenet", include_top=False)``, so the file
    lands exactly where Keras (and ``imagenet_weights: imagenet``) looks. A file already cached with
    the right md5 is used without a download.

    Returns
    -------
    Path
        The verified weights file.

    Raises
    ------
    ConnectionError
        If the download fails (this machine is probably offline).
    ValueError
        If the cached file's md5 is not the ImageNet file's.
    """
    import keras

    try:
        keras.applications.VGG16(include_top=False, weights="imagenet")
    except Exception as error:  # Keras raises a bare Exception("URL fetch failure ...")
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConnectionError(
            f"could not download the VGG16 ImageNet weights ({reason}); this machine looks offline. "
            f"Run `{STAGE_COMMAND}` on a machine with internet, then copy the file it prints to "
            f"{default_weights_path()} here (or set config key '{CONFIG_KEY}' to where you put it)."
        ) from error
    candidates = [default_weights_path(), Path("/tmp/.keras/models") / WEIGHTS_FILE]
    found = [path for path in candidates if path.is_file()]
    if not found:
        raise FileNotFoundError(f"Keras loaded the weights but none of {', '.join(map(str, candidates))} exists")
    path = found[0]
    md5 = file_md5(path)
    if md5 != IMAGENET_MD5:
        raise ValueError(f"{path} has md5 {md5}, expected {IMAGENET_MD5}; delete it and run `{STAGE_COMMAND}` again")
    return path


def write_random_weights(path, seed=0):
    """Write the weights of a randomly initialised VGG16 notop (NOT ImageNet weights).

    For tests and offline demos: the file loads like the real one
    (`cnnreg.transfer.feature_extractor`), but its features carry no ImageNet knowledge, and
    :func:`is_imagenet` says so.

    Parameters
    ----------
    path : str or path-like
        Output file; must end in ``.weights.h5`` (Keras 3's weights format). Written atomically.
    seed : int
        Initialisation seed; the same seed gives the same weights.

    Returns
    -------
    Path
    """
    import keras

    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"random weights are written in Keras 3's format, whose name must end in .weights.h5: {path}")
    keras.utils.set_random_seed(int(seed))
    model = keras.applications.VGG16(include_top=False, weights=None)
    return write_atomic(path, model.save_weights, suffix=".weights.h5")


def main(argv=None):
    """``python -m cnnreg.weights {stage,random}``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m cnnreg.weights", description="Get VGG16 notop weights for transfer-learning runs."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "stage",
        help="download the ImageNet weights into Keras' cache (needs internet), verify them, print the path",
        description=f"Downloads {WEIGHTS_FILE} into Keras' cache (needs internet), checks its md5 "
        f"{IMAGENET_MD5} and prints its path. Copy that file to the same path on offline machines, or "
        f"point the config key '{CONFIG_KEY}' at it.",
    )
    random = commands.add_parser(
        "random",
        help="write randomly initialised VGG16 notop weights: NOT ImageNet weights (tests, offline demos)",
        description="Writes the weights of a randomly initialised (seeded) VGG16 without its top, in Keras 3's "
        ".weights.h5 format. These are NOT ImageNet weights: features from them carry no pretrained "
        "knowledge. For tests and offline demos only.",
    )
    random.add_argument("path", type=Path, help="output file, ending in .weights.h5")
    random.add_argument("--seed", type=int, default=0, help="initialisation seed (default 0)")
    args = parser.parse_args(argv)
    try:
        if args.command == "stage":
            path = stage_weights()
            print(f"ImageNet VGG16 notop weights verified (md5 {IMAGENET_MD5}): {path}")
        else:
            path = write_random_weights(args.path, args.seed)
            print(f"random VGG16 notop weights (seed {args.seed}, NOT ImageNet) written to {path}")
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
