"""Cancelled SLURM jobs seen as failed: a shim for snakemake-executor-plugin-slurm 2.x.

sacct reports a job cancelled by ``scancel`` as ``CANCELLED by <uid>``. The plugin (2.8) compares
each state with ``CANCELLED`` exactly (``fail_stati`` in its ``check_active_jobs``), so it takes
such a job for one still running and Snakemake waits for it for ever. `recognise_cancelled_jobs`
wraps the plugin's status query so that such a state reads ``CANCELLED``: the plugin then reports
the job failed at its next status check, and Snakemake resubmits it (the profile's ``retries``);
a training run resumes from its checkpoint. ``tests/slurm`` runs ``scancel`` against the real
plugin, so a plugin release that changes this breaks that test rather than the users' runs.
"""

import functools
import sys

PLUGIN = "snakemake_executor_plugin_slurm"


def plain_state(state):
    """``CANCELLED by 1000`` as ``CANCELLED``; every other state as it is."""
    return "CANCELLED" if state.startswith("CANCELLED by ") else state


def recognise_cancelled_jobs():
    """Wrap the status query of the loaded SLURM plugin, once; without the plugin, do nothing."""
    plugin = sys.modules.get(PLUGIN)
    query = getattr(plugin, "query_job_status", None)
    if query is None or getattr(query, "recognises_cancelled", False):
        return

    @functools.wraps(query)
    async def query_job_status(command, logger):
        states, seconds = await query(command, logger)
        if states is not None:
            states = {job: plain_state(state) for job, state in states.items()}
        return states, seconds

    query_job_status.recognises_cancelled = True
    plugin.query_job_status = query_job_status
