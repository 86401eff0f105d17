"""The localhost runner exiting (told to stop, or idle) while clients submit: no job fails, no call is lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor.compute.localhost import LocalhostCompute, _process_alive, stop_runners
from tests.conftest import merge_config


def add_one(x):
    return x + 1


def slow_add_one(x):
    time.sleep(0.3)
    return x + 1


@pytest.fixture
def own_runner(tmp_path: Path, localhost_config: dict[str, Any]):
    config = merge_config(localhost_config, {"localhost": {"runner_dir": str(tmp_path / "runner"), "workers": 1}})
    yield config
    stop_runners(tmp_path / "runner")


def test_jobs_submitted_while_the_runner_is_stopped_run_on_a_new_runner(own_runner, tmp_path: Path) -> None:
    runner_dir = tmp_path / "runner"
    pids: set[int] = set()
    with pywren.FunctionExecutor(config=own_runner) as executor:
        compute = LocalhostCompute(executor.config)
        for round_number in range(12):
            assert executor.get_result(executor.call_async(add_one, 0)) == 1  # a runner is up
            pids.add(compute.stats()["pid"])
            stopper = threading.Thread(target=stop_runners, args=(runner_dir,))
            stopper.start()  # races with the submissions below
            futures = [executor.map(add_one, [round_number, round_number + 1]) for _ in range(3)]
            stopper.join()
            for job in futures:
                assert executor.get_result(job, timeout=120) == [round_number + 1, round_number + 2]
        executor.clean()
    assert len(pids) > 1  # runners really were stopped and replaced


def runner_pid(future) -> int:
    """The pid of the localhost runner that ran a call (its activation id is ``local-{pid}-{n}``)."""
    return int(future.stats["activation_id"].split("-")[1])


def test_a_runner_that_exits_idle_hands_new_jobs_to_a_new_runner(own_runner) -> None:
    config = merge_config(own_runner, {"localhost": {"runner_idle_timeout": 1}})
    with pywren.FunctionExecutor(config=config) as executor:
        served: list[int] = []
        for round_number in range(6):
            futures = executor.map(add_one, [round_number])
            assert executor.get_result(futures, timeout=120) == [round_number + 1]
            served.append(runner_pid(futures[0]))
            threading.Event().wait(0.9 + 0.05 * round_number)  # submit around the runner's idle exit
        # once the runner that served the last job has exited idle, the next job starts a new one
        idle = served[-1]
        deadline = time.monotonic() + 60
        while _process_alive(idle) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _process_alive(idle), f"runner {idle} did not exit after 1 s idle"
        futures = executor.map(add_one, [100])
        assert executor.get_result(futures, timeout=120) == [101]
        assert runner_pid(futures[0]) != idle
        assert LocalhostCompute(executor.config).stats()["pid"] == runner_pid(futures[0])
        executor.clean()


def test_a_runner_told_to_stop_finishes_the_calls_it_accepted(own_runner, tmp_path: Path) -> None:
    with pywren.FunctionExecutor(config=own_runner) as executor:  # one worker: most calls are still queued
        accepted = executor.map(slow_add_one, range(5))
        assert stop_runners(tmp_path / "runner") == 1
        later = executor.map(add_one, [10])  # the stopping runner no longer accepts: a new one takes it
        assert executor.get_result(later, timeout=120) == [11]
        assert executor.get_result(accepted, timeout=120) == [1, 2, 3, 4, 5]
        runner_of = {f.stats["activation_id"].rsplit("-", 1)[0] for f in accepted}
        assert len(runner_of) == 1 and later[0].stats["activation_id"].rsplit("-", 1)[0] not in runner_of
        executor.clean()
