import asyncio
import importlib
import logging

from cnnreg.slurm_states import recognise_cancelled_jobs

STATES = "printf '11|CANCELLED by 0\\n12|RUNNING\\n13|CANCELLED\\n'"


def test_the_plugin_sees_a_job_cancelled_by_a_user_as_cancelled(monkeypatch):
    plugin = importlib.import_module("snakemake_executor_plugin_slurm")
    monkeypatch.setattr(plugin, "query_job_status", plugin.query_job_status)  # restored afterwards
    logger = logging.getLogger("test")
    before, _ = asyncio.run(plugin.query_job_status(STATES, logger))
    assert before == {"11": "CANCELLED by 0", "12": "RUNNING", "13": "CANCELLED"}  # the plugin's own reading

    recognise_cancelled_jobs()
    recognise_cancelled_jobs()  # a second call (every job parses the Snakefile) wraps nothing more
    after, seconds = asyncio.run(plugin.query_job_status(STATES, logger))
    assert after == {"11": "CANCELLED", "12": "RUNNING", "13": "CANCELLED"}
    assert seconds >= 0
    assert plugin.query_job_status.__wrapped__.__name__ == "query_job_status"
    assert not hasattr(plugin.query_job_status.__wrapped__, "__wrapped__")
    assert asyncio.run(plugin.query_job_status("false", logger)) == (None, None)  # a failed query, as before
