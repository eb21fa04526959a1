"""What a job computes on: the device it sees, and the check that a job that asked for a GPU
got one."""

import os

import tensorflow as tf

__all__ = ["NoGPUError", "device_name", "require_gpu"]


class NoGPUError(RuntimeError):
    """A job asked for a GPU, TensorFlow sees none, and the config does not allow the CPU."""


def device_name():
    """'CPU' or the name of the first visible GPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def require_gpu(asked, allow_cpu):
    """Stop a job at once when it asked for GPUs and TensorFlow sees none.

    Without this, a job whose GPU request was lost (another profile, a CPU partition) or whose
    TensorFlow has no CUDA libraries trains on the CPU, many times slower, and says so only in
    metrics.json.

    Parameters
    ----------
    asked : int
        GPUs the job asked for (its `gpu` resource; config key ``gpus_per_job``).
    allow_cpu : bool
        Config key ``allow_cpu``: run on the CPU instead.

    Raises
    ------
    NoGPUError
        If `asked` > 0, `allow_cpu` is false and no GPU is visible.
    """
    if not asked or allow_cpu or tf.config.list_physical_devices("GPU"):
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
    raise NoGPUError(
        f"this job asked for {asked} GPU(s) (config key 'gpus_per_job') but TensorFlow sees none "
        f"(CUDA_VISIBLE_DEVICES={visible}). Check that the job got one (`sacct -j <job> "
        "--format=AllocTRES`) and that TensorFlow has its CUDA libraries (`.venv/bin/pip install -e "
        "'.[gpu]'`); to run on the CPU on purpose, set config key 'allow_cpu: true' (or 'gpus_per_job: 0')."
    )
