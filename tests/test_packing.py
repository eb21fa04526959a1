"""Which runs share a job, and the time limits jobs ask for."""

import itertools
from pathlib import Path

import pytest
import yaml

from cnnreg import paths
from cnnreg.packing import JOB_ALLOWANCE_MINUTES, form_packs, job_minutes, run_minutes, time_limit
from cnnreg.studies import build_plan

LAB_CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"


def test_job_minutes_are_the_sum_one_after_another_and_the_longest_lane_concurrently():
    assert job_minutes([30, 20, 10], concurrent=1) == JOB_ALLOWANCE_MINUTES + 60
    assert job_minutes([30, 20, 10], concurrent=3) == JOB_ALLOWANCE_MINUTES + 30
    assert job_minutes([30, 20, 10, 5], concurrent=2) == JOB_ALLOWANCE_MINUTES + 35  # 30+5 | 20+10


@pytest.mark.parametrize("minutes", [5, 100, 1000, 5000])
def test_time_limits_grow_per_attempt_and_never_exceed_max_runtime(minutes):
    limits = [time_limit(minutes, attempt, max_runtime=1440) for attempt in range(1, 6)]
    assert limits == sorted(limits) and max(limits) <= 1440
    assert limits[0] == min(1440, minutes)


def test_packs_hold_one_cache_each_and_stay_within_their_run_count_and_budget():
    estimate = dict(zip("abcdefgh", [100, 100, 100, 500, 900, 50, 50, 2000], strict=True)).get
    group = {"a": 1, "b": 1, "c": 1, "d": 1, "e": 1, "f": 2, "g": 2, "h": 2}.get
    packs = form_packs("hgfedcba", estimate, group, {"runs": 3, "minutes": 800}, max_runtime=1440)
    assert list(packs.values()) == [("a", "b", "c"), ("d",), ("e",), ("f", "g"), ("h",)]
    assert list(packs) == ["a+2", "d", "e", "f+1", "h"]
    for runs in packs.values():
        assert len({group(r) for r in runs}) == 1
        assert len(runs) == 1 or job_minutes([estimate(r) for r in runs], 1) <= 800


@pytest.mark.parametrize(("runs", "concurrent"), [(1, 1), (4, 1), (4, 4), (16, 1)])
def test_every_job_of_the_lab_grid_asks_for_at_most_max_runtime(runs, concurrent):
    config = yaml.safe_load(LAB_CONFIG.read_text())
    plan = build_plan(config)
    minutes = {run: run_minutes(params) for run, params in plan.runs.items()}
    packs = form_packs(
        plan.runs, minutes.get, lambda run: paths.cache(plan.runs[run]), {"runs": runs, "concurrent": concurrent}
    )
    assert sorted(itertools.chain(*packs.values())) == sorted(plan.runs)
    for members, attempt in itertools.product(packs.values(), (1, 2, 3)):
        assert len(members) <= runs
        assert time_limit(job_minutes([minutes[r] for r in members], concurrent), attempt) <= config["max_runtime"]
