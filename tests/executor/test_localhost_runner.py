"""The localhost compute backend: detached runner, warm pool, hard limits."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor.compute.localhost import LocalhostCompute


@pytest.fixture
def pw(localhost_config):
    executor = pywren.FunctionExecutor(config=localhost_config)
    yield executor
    executor.clean()


def allocate(megabytes):
    block = bytearray(megabytes * 1024 * 1024)
    return len(block)


def test_memory_overrun_is_reported_as_out_of_memory(pw):
    future = pw.call_async(allocate, 512, runtime_memory=128)
    with pytest.raises(MemoryError, match="ran out of memory \\(runtime_memory=128 MB\\)"):
        future.result()
    assert future.error["type"] == "ActivationMemoryError"
    # the worker is reused and its limit lifted for the next call
    assert pw.get_result(pw.call_async(allocate, 300, runtime_memory=512)) == 300 * 1024 * 1024


def ignore_alarm_and_sleep(seconds):
    import signal as _signal
    import time as _time

    _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGALRM})
    _time.sleep(seconds)
    return "finished"


def test_a_call_that_ignores_the_soft_timeout_is_killed(pw):
    future = pw.call_async(ignore_alarm_and_sleep, 60, timeout=1)
    with pytest.raises(pywren.ActivationTimeoutError, match="was killed"):
        future.result()
    assert pw.get_result(pw.call_async(len, [1, 2])) == 2  # the pool replaced the worker


def crash(x):
    import os as _os

    _os.kill(_os.getpid(), signal.SIGSEGV)


def test_a_crashed_worker_is_reported_not_hung(pw):
    future = pw.call_async(crash, 1)
    with pytest.raises(pywren.PyWrenError, match="killed by signal SIGSEGV"):
        future.result()


def test_runner_survives_the_submitting_process(localhost_config, tmp_path):
    script = tmp_path / "submit.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, time
        import airflow_pywren as pywren

        def slow_square(x):
            time.sleep(1.5)
            return x * x

        pw = pywren.FunctionExecutor(config={json.dumps(localhost_config)!s})
        futures = pw.map(slow_square, [1, 2, 3])
        print(json.dumps({{"executor_id": pw.executor_id, "job_id": futures[0].job_id}}))
    """)
        .replace("true", "True")
        .replace("false", "False")
    )
    submitted = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    ids = json.loads(submitted.stdout.strip().splitlines()[-1])
    collector = pywren.FunctionExecutor(config=localhost_config)
    futures = collector.job_futures(ids["job_id"], executor_id=ids["executor_id"])
    assert not all(f.done() for f in futures)  # still running after the submitter exited
    assert collector.get_result(futures) == [1, 4, 9]
    collector.clean(ids["executor_id"])


def test_concurrency_is_capped_by_workers(pw):
    def occupied_window(x):
        import time as _time

        start = _time.time()
        _time.sleep(0.3)
        return start, _time.time()

    windows = pw.get_result(pw.map(occupied_window, range(6)))
    events = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    running, peak = 0, 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2  # localhost.workers is 2 in the test config


def test_cancel_stops_queued_and_running_calls(pw):
    futures = pw.map(time.sleep, [30] * 4, timeout=60)
    time.sleep(0.3)
    assert pw.cancel(futures) == 4
    done, not_done = pw.wait(futures, timeout=10)
    assert not not_done
    assert all("was cancelled" in f.error["message"] and f.cancelled() for f in futures)


def test_runner_stats_count_invocations(pw, localhost_config):
    compute = LocalhostCompute(pw.config)
    before = compute.stats()["invoked"]
    pw.get_result(pw.map(len, ["ab"] * 7))
    assert compute.stats()["invoked"] - before == 7


@pytest.fixture
def helper_module(tmp_path, monkeypatch):
    """A local module (importable here, unknown to the runner) and a function that uses it."""
    module_name = f"pw_helper_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module_name}.py").write_text("def triple(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    helper = __import__(module_name)

    def use_helper(x):
        return helper.triple(x)

    return module_name, use_helper


def test_exclude_modules_keeps_a_local_module_out(pw, helper_module):
    module_name, use_helper = helper_module
    with pytest.raises(ModuleNotFoundError, match=module_name):
        pw.get_result(pw.call_async(use_helper, 2, exclude_modules=[module_name]))
    assert pw.get_result(pw.call_async(use_helper, 2)) == 6  # shipped with the function


def test_modules_shipped_with_one_job_are_not_importable_by_the_next(pw, helper_module):
    module_name, use_helper = helper_module
    assert pw.get_result(pw.map(use_helper, range(6))) == [0, 3, 6, 9, 12, 15]  # warms both workers
    futures = pw.map(use_helper, range(6), exclude_modules=[module_name])
    pw.wait(futures)
    assert [type(f.exception()).__name__ for f in futures] == ["ModuleNotFoundError"] * 6


def test_configured_memory_and_timeout_are_the_call_defaults(localhost_config):
    config = {**localhost_config, "pywren": {**localhost_config["pywren"], "runtime_memory": 128, "runtime_timeout": 1}}
    pw = pywren.FunctionExecutor(config=config)
    memory_future, sleep_future = pw.call_async(allocate, 512), pw.call_async(time.sleep, 30)
    with pytest.raises(MemoryError, match="runtime_memory=128 MB"):
        memory_future.result()
    with pytest.raises(pywren.ActivationTimeoutError, match="timeout of 1 s"):
        sleep_future.result()
    pw.clean()


def test_a_call_whose_runner_dies_is_failed_as_lost_not_waited_for_forever(localhost_config):
    import os

    config = {**localhost_config, "pywren": {**localhost_config["pywren"], "lost_call_grace": 1}}
    pw = pywren.FunctionExecutor(config=config)
    future = pw.call_async(time.sleep, 30, timeout=2)
    while not future.running():
        pw.wait([future], return_when=pywren.ALWAYS)
        time.sleep(0.02)
    os.killpg(LocalhostCompute(pw.config).stats()["pid"], signal.SIGKILL)  # runner and workers vanish
    with pytest.raises(pywren.executor.errors.ActivationLostError, match="activation was lost"):
        future.result(timeout=30)
    assert pw.job_futures(future.job_id)[0].done()  # recorded in storage for every observer
    pw.clean()


def test_queued_calls_of_a_dead_runner_are_failed_as_lost(localhost_config):
    import os

    pw = pywren.FunctionExecutor(config=localhost_config)
    futures = pw.map(time.sleep, [30] * 5)  # 2 workers: three calls wait in the runner's queue
    while sum(f.running() for f in futures) < 2:
        pw.wait(futures, return_when=pywren.ALWAYS)
        time.sleep(0.02)
    os.killpg(LocalhostCompute(pw.config).stats()["pid"], signal.SIGKILL)
    done, not_done = pw.wait(futures, timeout=30)  # long before the calls' 600 s timeout
    assert not not_done
    assert all(isinstance(f.exception(), pywren.executor.errors.ActivationLostError) for f in futures)
    assert sum(f.worker_pid is None for f in futures) == 3  # the queued ones never reached a worker
    pw.clean()


def test_stop_runners_finds_a_runner_whose_socket_moved_for_a_long_path(localhost_config, tmp_path):
    from airflow_pywren.executor.compute.localhost import stop_runners

    runner_dir = tmp_path / ("deep-" * 20) / "runner"
    config = {**localhost_config, "localhost": {**localhost_config["localhost"], "runner_dir": str(runner_dir)}}
    pw = pywren.FunctionExecutor(config=config)
    assert pw.get_result(pw.call_async(len, "abc")) == 3
    compute = LocalhostCompute(pw.config)
    assert not compute.socket_path.startswith(str(runner_dir))  # too long for AF_UNIX: moved under /tmp
    assert stop_runners(runner_dir) == 1
    deadline = time.monotonic() + 10
    while compute.stats() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert compute.stats() is None
    pw.clean()


def test_a_call_handed_ahead_behind_a_long_call_moves_to_an_idle_worker(pw, tmp_path):
    """With two workers, call 2 is handed ahead to the worker running call 0 (which waits for a gate)."""
    gate = str(tmp_path / "gate")

    def first_waits_for_the_gate(x):
        import os as _os
        import time as _time

        while x == 0 and not _os.path.exists(gate):
            _time.sleep(0.02)
        return x

    futures = pw.map(first_waits_for_the_gate, [0, 1, 2, 3])
    try:
        assert [f.result(timeout=60) for f in futures[1:]] == [1, 2, 3]  # none waits behind call 0
        assert not futures[0].done()
    finally:
        open(gate, "w").close()
    assert futures[0].result(timeout=60) == 0


def test_calls_taken_back_from_a_worker_run_exactly_once(pw, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()

    def mark_once(x):
        import os as _os
        import time as _time

        _os.close(_os.open(str(marks / str(x)), _os.O_CREAT | _os.O_EXCL | _os.O_WRONLY))  # a second run fails
        _time.sleep((x * 7 % 5) / 200)  # uneven durations: workers go idle while others still hold calls
        return x

    for round_ in range(5):
        items = list(range(round_ * 40, round_ * 40 + 40))
        assert pw.get_result(pw.map(mark_once, items)) == items
    assert len(list(marks.iterdir())) == 200
