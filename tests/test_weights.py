"""Tests for cnnreg.weights: where the VGG16 weights live, staging them, random stand-ins, the command line.

Nothing here touches the network: downloads are faked, and the weights are a seeded random VGG16 notop.
"""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from cnnreg.transfer import feature_extractor
from cnnreg.weights import (
    CONFIG_KEY,
    IMAGENET_MD5,
    STAGE_COMMAND,
    WEIGHTS_FILE,
    default_weights_path,
    file_md5,
    is_imagenet,
    main,
    missing_weights_message,
    resolve_weights_path,
    write_random_weights,
)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random (seeded) VGG16 notop weights in Keras 3's .weights.h5 format."""
    return write_random_weights(tmp_path_factory.mktemp("weights") / "random.weights.h5", seed=1)


# --- weights files -------------------------------------------------------------------------------


def test_random_weights_are_seeded(weights, tmp_path):
    again = write_random_weights(tmp_path / "again.weights.h5", seed=1)
    other = write_random_weights(tmp_path / "other.weights.h5", seed=2)

    def kernel(path):
        with h5py.File(path) as f:
            found = []
            f.visititems(lambda name, obj: found.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
            return found[0]

    assert np.array_equal(kernel(weights), kernel(again))
    assert not np.array_equal(kernel(weights), kernel(other))


def test_missing_weights_message(tmp_path):
    missing = tmp_path / "nowhere" / WEIGHTS_FILE
    with pytest.raises(FileNotFoundError) as error:
        feature_extractor(missing, (32, 32, 3))
    message = str(error.value)
    assert str(missing) in message and f"'{CONFIG_KEY}'" in message and STAGE_COMMAND in message
    assert message == missing_weights_message(missing, CONFIG_KEY)
    assert "'my.key'" in missing_weights_message(missing, "my.key")


def test_default_path_honours_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    expected = tmp_path / "kh" / "models" / WEIGHTS_FILE
    assert default_weights_path() == expected
    assert resolve_weights_path("imagenet") == expected
    assert resolve_weights_path(None) == expected
    with pytest.raises(FileNotFoundError, match=str(expected)):
        feature_extractor("imagenet", (32, 32, 3))


def test_default_path_without_keras_home(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_weights_path() == tmp_path / ".keras" / "models" / WEIGHTS_FILE


def test_default_path_falls_back_to_tmp_like_keras(tmp_path, monkeypatch):
    # Keras' get_file uses /tmp/.keras when its home folder is not writable (simulated: tests may run as root).
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    monkeypatch.setenv("KERAS_HOME", str(locked))
    assert default_weights_path() == Path("/tmp/.keras/models") / WEIGHTS_FILE
    monkeypatch.setenv("KERAS_HOME", str(locked / "not" / "yet"))  # cannot be created either
    assert default_weights_path() == Path("/tmp/.keras/models") / WEIGHTS_FILE
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "not" / "yet"))  # Keras would create it
    assert default_weights_path() == tmp_path / "not" / "yet" / "models" / WEIGHTS_FILE


def test_resolve_expands_user_and_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WEIGHTS_DIR", "/data/w")
    assert resolve_weights_path("~/w.h5") == tmp_path / "w.h5"
    assert resolve_weights_path("$WEIGHTS_DIR/w.h5") == Path("/data/w/w.h5")
    assert resolve_weights_path(Path("rel/w.h5")) == Path("rel/w.h5")


def test_file_md5(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert file_md5(path) == "900150983cd24fb0d6963f7d28e17f72"
    assert len(IMAGENET_MD5) == 32


# --- command line --------------------------------------------------------------------------------


def test_cli_random(tmp_path, capsys):
    assert main(["random", str(tmp_path / "w.weights.h5"), "--seed", "4"]) == 0
    assert "NOT ImageNet" in capsys.readouterr().out
    assert feature_extractor(tmp_path / "w.weights.h5", (32, 32, 3)).name == "vgg16"
    assert main(["random", str(tmp_path / "w.h5")]) == 1
    assert ".weights.h5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["random", "--help"])
    assert exit_.value.code == 0
    assert "NOT ImageNet" in capsys.readouterr().out


def test_cli_stage_offline(monkeypatch, capsys):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")

    monkeypatch.setattr(keras.applications, "VGG16", offline)
    assert main(["stage"]) == 1
    err = capsys.readouterr().err
    assert "offline" in err and STAGE_COMMAND in err and "URL fetch failure" in err


def test_cli_stage_rejects_wrong_md5(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def fake_download(**kwargs):
        default_weights_path().parent.mkdir(parents=True)
        default_weights_path().write_bytes(b"corrupt")

    monkeypatch.setattr(keras.applications, "VGG16", fake_download)
    assert main(["stage"]) == 1
    assert IMAGENET_MD5 in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:.cnnreg.weights. found in sys.modules:RuntimeWarning")
def test_module_runs_as_script(tmp_path, monkeypatch):
    out = tmp_path / "r.weights.h5"
    monkeypatch.setattr(sys, "argv", ["weights", "random", str(out), "--seed", "5"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("cnnreg.weights", run_name="__main__")
    assert exit_.value.code == 0
    assert out.is_file() and not is_imagenet(out)


def test_resolving_the_path_does_not_start_tensorflow():
    """The workflow resolves the weights path while it plans every job graph."""
    code = "import sys, cnnreg.weights as w; w.resolve_weights_path('imagenet'); print('keras' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
