"""A call whose return value cannot be pickled fails alone, with an error naming the call and the value's type."""

from __future__ import annotations

import threading

import pytest

from airflow_pywren.executor.errors import UnpicklableResultError


def lock_for_three(x):
    return threading.Lock() if x == 3 else x * 10


def generator_of(x):
    return (i for i in range(x))


def test_an_unpicklable_return_value_fails_its_call_only(pw) -> None:
    futures = pw.map(lock_for_three, [1, 2, 3, 4])
    done, not_done = pw.wait(futures)
    assert not not_done
    assert [f.status for f in futures] == ["success", "success", "error", "success"]
    assert [f.result() for i, f in enumerate(futures) if i != 2] == [10, 20, 40]
    error = futures[2].exception()
    assert isinstance(error, UnpicklableResultError)
    message = str(error)
    assert f"call 00002 of job {futures[2].job_id}" in message and "(lock)" in message
    assert "cannot be pickled" in message and "return plain data" in message
    with pytest.raises(UnpicklableResultError):
        pw.get_result(futures)


def test_a_reducer_sees_the_map_error_not_a_hang(pw) -> None:
    futures = pw.map_reduce(generator_of, [2, 3], sum)
    with pytest.raises(Exception, match="cannot be pickled") as raised:
        pw.get_result(futures)
    assert "generator" in str(raised.value)
