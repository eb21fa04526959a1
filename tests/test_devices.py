"""A job that asked for a GPU and sees none stops at once, unless the config allows the CPU."""

import pytest
import tensorflow as tf
from workflow_helpers import TINY_DEFAULTS, make_data, snakemake, write_config

from cnnreg.devices import NoGPUError, require_gpu

no_gpu = pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a GPU is visible here")


@no_gpu
def test_a_job_that_asked_for_a_gpu_and_sees_none_is_stopped():
    with pytest.raises(
        NoGPUError, match=r"asked for 1 GPU\(s\).*'gpus_per_job'.*TensorFlow sees none.*'allow_cpu: true'"
    ):
        require_gpu(1, allow_cpu=False)


@no_gpu
def test_the_cpu_is_fine_when_no_gpu_was_asked_for_or_the_config_allows_it():
    assert require_gpu(0, allow_cpu=False) is None
    assert require_gpu(1, allow_cpu=True) is None


@no_gpu
@pytest.mark.workflow
def test_the_workflow_stops_a_training_job_without_its_gpu_before_it_trains(tmp_path):
    config = {
        "datasets": make_data(tmp_path / "data", n_train=4, n_val=2, size=32),
        "defaults": {**TINY_DEFAULTS, "epochs": 1},
        "allow_cpu": False,
        "studies": {"s": {"grid": {"batch_norm": [False]}, "datasets": ["skin"], "seeds": [0]}},
    }
    write_config(tmp_path, config)
    result = snakemake(tmp_path, "--cores", "1", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error in rule train" in output and "NoGPUError" in output and "'allow_cpu: true'" in output
    assert not list((tmp_path / "results").glob("runs/*/resume/history.csv"))
    assert not list((tmp_path / "results").glob("runs/*/history.csv"))
