"""The keywords, factories and composition of the original PyWren API, and nested executors.

Written from the original documentation (api-details 1.0.20 and 1.5.2, functions 1.5.2):
each keyword is accepted with its original meaning, or accepted and ignored with one
warning line, and never raises ``TypeError``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor import legacy
from airflow_pywren.executor.compute.localhost import LocalhostCompute, stop_runners
from airflow_pywren.executor.errors import PyWrenConfigError
from tests.conftest import merge_config


class Refused(Exception):
    pass


def refuse_odd(x):
    if x % 2:
        raise Refused(f"odd {x}")
    return x


def slow(seconds):
    time.sleep(seconds)
    return seconds


# ------------------------------------------------------------------ wait / get_result
def test_get_result_fs_and_throw_except(pw):
    futures = pw.map(refuse_odd, [0, 1, 2, 3])
    assert pw.get_result(fs=futures, throw_except=False) == [0, None, 2, None]
    with pytest.raises(Refused, match="odd 1"):
        pw.get_result(fs=futures)
    assert futures[1].result(throw_except=False) is None
    assert isinstance(futures[1].exception(), Refused)
    with pytest.raises(Refused):
        futures[1].result(throw_except=True)


def test_an_exception_raised_by_result_is_not_raised_again_by_get_result(pw):
    failed = pw.call_async(refuse_odd, 1)
    with pytest.raises(Refused):
        failed.result()
    pw.map(refuse_odd, [2, 4])
    assert pw.get_result() == [2, 4]  # the executor's unread calls: the failure was reported already
    done, _ = pw.monitor()  # nor does waiting for all of them
    assert failed in done
    with pytest.raises(Refused):
        pw.monitor(fs=[failed])  # named, it is raised


def test_wait_throw_except_and_download_results(pw):
    futures = pw.map(refuse_odd, [0, 1])
    done, not_done = pw.wait(fs=futures)  # today's default: wait never raises
    assert len(done) == 2 and not_done == []
    with pytest.raises(Refused):
        pw.wait(futures, throw_except=True)
    good = pw.map(refuse_odd, [2, 4])
    done, _ = pw.wait(good, download_results=True, THREADPOOL_SIZE=4)
    assert all(f.has_output() for f in done)  # results were read while waiting
    assert pw.get_result(good) == [2, 4]


def test_monitor_is_wait_raising_by_default(pw):
    futures = pw.map(refuse_odd, [0, 1])
    with pytest.raises(Refused, match="odd 1"):
        pw.monitor()
    done, not_done = pw.monitor(fs=futures, throw_except=False, WAIT_DUR_SEC=0.05)
    assert done == futures and not_done == []
    assert pw.get_result(pw.map(refuse_odd, [2])) == [2]


@pytest.mark.parametrize(("code", "name"), [(1, "ALL_COMPLETED"), (2, "ANY_COMPLETED"), (3, "ALWAYS")])
def test_return_when_takes_the_original_integer_constants(pw, code, name):
    assert legacy.return_when(code) == name == legacy.return_when(name.lower())
    futures = pw.map(slow, [0, 0.5])
    done, not_done = pw.wait(futures, return_when=code)
    if code == 1:
        assert len(done) == 2 and not not_done
    elif code == 2:
        assert len(done) >= 1
    pw.wait(futures)


def test_return_when_rejects_other_values(pw):
    with pytest.raises(ValueError, match="ALL_COMPLETED"):
        pw.wait(pw.map(slow, [0]), return_when=7)


def test_wait_dur_sec_sets_the_pause_between_checks(pw, monkeypatch):
    pauses = []
    real_sleep = time.sleep
    monkeypatch.setattr("airflow_pywren.executor.executor.time.sleep", lambda s: (pauses.append(s), real_sleep(s)))
    futures = pw.map(slow, [0.3])
    assert pw.get_result(futures, WAIT_DUR_SEC=0.1) == [0.3]
    assert pauses and all(p <= 0.1 for p in pauses)
    pw.wait(pw.map(slow, [0.2]), WAIT_DUR_SEC=0.05, THREADPOOL_SIZE=128)
    with pytest.raises(ValueError, match="WAIT_DUR_SEC"):
        pw.wait(futures, WAIT_DUR_SEC=0)


def test_unknown_keywords_still_raise_type_error(pw):
    with pytest.raises(TypeError, match="extra_evn"):
        pw.map(slow, [0], extra_evn={})
    with pytest.raises(TypeError, match="timout"):
        pw.get_result(timout=1)


def test_keywords_with_no_effect_are_accepted_with_one_warning(pw, caplog):
    caplog.set_level(logging.WARNING, logger="airflow_pywren.executor")
    legacy._warned.clear()
    for _ in range(2):
        futures = pw.map(
            refuse_odd,
            [0, 2],
            remote_invocation=True,
            remote_invocation_groups=10,
            invoke_pool_threads=64,
            data_all_as_one=False,
            overwrite_invoke_args=None,
        )
        assert pw.get_result(futures) == [0, 2]
    pw.call_async(refuse_odd, 0, invoke_pool_threads=8)
    assert pw.get_result() == 0
    warnings = [r.getMessage() for r in caplog.records if "has no effect here" in r.getMessage()]
    assert len(warnings) == 6  # once per method and keyword
    assert any("map(invoke_pool_threads=...)" in w and "ibm_cf.max_concurrency" in w for w in warnings)


def test_include_modules_none_ships_no_module(pw, tmp_path, monkeypatch):
    module = tmp_path / "compat_helper_mod.py"
    module.write_text("def triple(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import compat_helper_mod

    def uses_helper(x):
        return compat_helper_mod.triple(x)

    assert pw.get_result(pw.call_async(uses_helper, 2, include_modules=[])) == 6
    assert pw.get_result(pw.call_async(uses_helper, 2, include_modules=["compat_helper_mod"])) == 6
    pw.call_async(uses_helper, 2, include_modules=None)  # nothing shipped: the worker cannot import it
    with pytest.raises(ModuleNotFoundError, match="compat_helper_mod"):
        pw.get_result()


# ------------------------------------------------------------------------- clean / plot
def test_clean_keywords(localhost_config, tmp_path):
    config = merge_config(localhost_config, {"localhost": {"storage_dir": str(tmp_path / "storage")}})
    first, second = pywren.ibm_cf_executor(config=config), pywren.ibm_cf_executor(config=config)
    kept = first.map(refuse_odd, [0, 2])
    dropped = first.call_async(refuse_odd, 4)
    first.get_result()
    second.get_result(second.call_async(refuse_odd, 6))
    assert first.clean(fs=[dropped]) > 0
    assert first.job_ids() == [kept[0].job_id]
    assert first.clean(local_execution=False) > 0  # accepted; cleans here
    assert first.job_ids() == [] and second.job_ids() == ["A000"]
    first.get_result(first.call_async(refuse_odd, 8))
    assert first.clean(delete_all=True) > 0
    assert first.job_ids() == [] and second.job_ids() == []


def test_plot_dst_and_the_original_plot_names(pw, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    futures = pw.map(slow, [0, 0.05, 0.1])
    pw.get_result(futures)
    paths = pw.plot(dst=str(tmp_path / "out" / "test"))
    assert sorted(p.name for p in paths) == ["test_concurrency.png", "test_timeline.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert [p.name for p in pw.create_timeline_plots(str(tmp_path), "again", futures)][0] == "again_timeline.png"
    assert (tmp_path / "exec_timeline.png") in pw.create_execution_plots(str(tmp_path), "exec")
    monkeypatch.chdir(tmp_path)
    paths = pw.plot(fs=futures)
    assert all(p.parent == Path("plots") for p in paths)


# --------------------------------------------------------------------------- factories
def test_factories(localhost_config, cos_config):
    with pywren.local_executor(config=localhost_config) as executor:
        assert executor.config["pywren"]["compute_backend"] == "localhost"
        assert executor.get_result(executor.call_async(refuse_odd, 2)) == 2
        executor.clean()
    with pywren.function_executor(
        config=merge_config(localhost_config, cos_config), backend="localhost", storage_backend="ibm_cos"
    ) as executor:
        assert executor.storage.name == "ibm_cos"
        assert executor.get_result(executor.map(refuse_odd, [2, 4])) == [2, 4]
        executor.clean()
    with pywren.ibm_cf_executor(config=localhost_config, storage_backend="localhost", remote_invoker=True) as executor:
        assert executor.config["ibm_cf"]["remote_invoker"] is True
    with pytest.raises(PyWrenConfigError, match="knative"):
        pywren.function_executor(config=localhost_config, backend="knative")


# ----------------------------------------------------------------------- composition
def add_seven(id, x):
    return x + 7


def scheduler(total):
    inner = pywren.ibm_cf_executor()
    return inner.map(add_seven, range(total))


def one_more_level(total):
    inner = pywren.ibm_cf_executor()
    return inner.call_async(scheduler, total)


def summed_inside(total):
    inner = pywren.ibm_cf_executor()
    inner.map(add_seven, range(total))
    return sum(inner.get_result())


def reduce_inside(total):
    inner = pywren.ibm_cf_executor()
    return inner.map_reduce(add_seven, range(total), sum)


@pytest.fixture(params=["localhost", "ibm_cos"])
def composing(request, localhost_config):
    config = localhost_config
    if request.param == "ibm_cos":
        config = merge_config(localhost_config, request.getfixturevalue("cos_config"))
    executor = pywren.ibm_cf_executor(config=config)
    yield executor
    executor.clean()
    executor.close()


def test_a_call_returning_futures_gives_their_results(composing):
    composing.call_async(scheduler, 5)
    assert composing.get_result() == [7, 8, 9, 10, 11]
    outer = composing.call_async(one_more_level, 3)
    assert composing.get_result(outer) == [7, 8, 9]  # recursively
    inner = outer.result()  # the future itself gives the inner future, usable here
    assert isinstance(inner, pywren.ResponseFuture) and composing.get_result(inner) == [7, 8, 9]
    assert composing.get_result(composing.call_async(reduce_inside, 4)) == 7 * 4 + 6
    assert composing.get_result(composing.map(summed_inside, [1, 2])) == [7, 15]


# -------------------------------------------------------------------- nested executors
def inner_map(x):
    inner = pywren.ibm_cf_executor()
    inner.map(add_seven, range(x))
    return inner.get_result()


def deeper(x):
    inner = pywren.ibm_cf_executor()
    return inner.get_result(inner.map(inner_map, [x, x]))


@pytest.mark.parametrize("workers", [1, 2])
def test_nested_executors_never_deadlock(localhost_config, tmp_path, workers):
    """The original nested examples on a pool of one and two workers: waiting calls lend workers."""
    runner_dir = tmp_path / "runner"
    config = merge_config(localhost_config, {"localhost": {"workers": workers, "runner_dir": str(runner_dir)}})
    try:
        with pywren.ibm_cf_executor(config=config) as executor:
            executor.map(inner_map, range(1, 11))
            assert executor.get_result(timeout=300) == [[7 + i for i in range(n)] for n in range(1, 11)]
            assert executor.get_result(executor.call_async(deeper, 2), timeout=300) == [[7, 8], [7, 8]]
            executor.call_async(scheduler, 5)
            assert executor.get_result(timeout=300) == [7, 8, 9, 10, 11]
            compute = LocalhostCompute(executor.config)
            stats = compute.stats()
            deadline = time.monotonic() + 60
            while stats["completed"] < stats["invoked"] and time.monotonic() < deadline:
                time.sleep(0.05)  # the runner counts a call once its worker reports back, just after its status
                stats = compute.stats()
            assert stats["invoked"] == stats["completed"] == 10 + 55 + (1 + 2 + 2 * 2) + (1 + 5)
            assert stats["waiting"] == 0 and stats["crashed"] == 0 and stats["killed"] == 0
            executor.clean()
    finally:
        stop_runners(runner_dir)


def test_waiting_calls_lend_at_most_max_extra_workers(localhost_config, tmp_path):
    """With no extra worker allowed, a nested wait on one worker cannot progress: the bound is real."""
    runner_dir = tmp_path / "runner"
    config = merge_config(
        localhost_config, {"localhost": {"workers": 1, "runner_dir": str(runner_dir), "max_extra_workers": 0}}
    )
    try:
        with pywren.ibm_cf_executor(config=config) as executor:
            future = executor.call_async(inner_map, 2, timeout=5)
            with pytest.raises(pywren.ActivationTimeoutError):
                executor.get_result(future, timeout=120)
            executor.clean()
    finally:
        stop_runners(runner_dir)
