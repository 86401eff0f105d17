"""What the job view reads from storage, and how often: the reader behind the plugin's API (no Airflow)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_pywren.executor.callstore import segments
from airflow_pywren.executor.executor import FunctionExecutor
from airflow_pywren.ui import reader
from airflow_pywren.ui.reader import JobCleaned, JobView


def wait_for_file(path: str, x: int) -> int:
    if x % 2:
        while not os.path.exists(path):
            time.sleep(0.02)
    return x


def fail_on_three(x: int) -> Any:
    if x == 3:
        raise KeyError(f"no key {x}")
    if x == 4:
        return "x" * 5000
    return {"value": x}


def _ref(futures: list) -> dict[str, Any]:
    return {"executor_id": futures[0].executor_id, "kind": "map", "job_ids": [futures[0].job_id]}


def _requests(view: JobView) -> dict[str, int]:
    return dict(view.executor.storage.request_counts)


@pytest.fixture(autouse=True)
def _refresh_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "MIN_REFRESH_SECONDS", 0.0)


def test_a_refresh_costs_one_list_and_gets_only_new_statuses_and_the_shown_starts(
    localhost_config: dict[str, Any], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    with FunctionExecutor(config=localhost_config) as pw:
        futures = pw.map(lambda x: wait_for_file(str(gate), x), [0, 2, 4, 1, 3, 5])
        pw.wait(futures[:3])  # then 1 and 3 hold both workers and 5 waits
        view = JobView(FunctionExecutor(config=localhost_config), _ref(futures))
        try:
            while sum(f.status == "running" for f in view.futures) < 2:  # two workers hold two waiting calls
                view.executor.storage.request_counts.clear()
                view.refresh()
            assert _requests(view).get("LIST") == 1
            summary = view.summary()
            assert (summary["total"], summary["success"], summary["running"], summary["pending"]) == (6, 3, 2, 1)

            view.executor.storage.request_counts.clear()
            view.refresh()  # nothing new has ended: one LIST, no GET
            assert _requests(view) == {"LIST": 1}

            view.executor.storage.request_counts.clear()
            page = view.calls(offset=2, limit=2)  # calls 2 (done) and 3 (running): one start record read
            assert [c["status"] for c in page["calls"]] == ["success", "running"]
            # objects: the start record is one GET; segments: it came with the poll, no request at all
            assert page["calls"][1]["start_time"]
            assert _requests(view) == ({"GET": 1} if view.executor.calls.layout == "objects" else {})

            gate.touch()
            pw.wait(futures)
            view.executor.storage.request_counts.clear()
            view.refresh()  # one LIST, one GET per status that appeared since (segments: per segment that grew)
            if view.executor.calls.layout == "objects":
                assert _requests(view) == {"LIST": 1, "GET": 3}
            else:
                assert _requests(view)["LIST"] == 1 and 1 <= _requests(view)["GET"] <= 2  # one segment per worker
            view.executor.storage.request_counts.clear()
            view.refresh()  # a finished job: nothing to read
            assert _requests(view) == {}
            timeline = view.timeline()
            assert len(timeline["calls"]) == 6 and all(end >= start for _, start, end, _ in timeline["calls"])
        finally:
            view.close()


def test_pages_filters_errors_and_result_previews(localhost_config: dict[str, Any]) -> None:
    with FunctionExecutor(config=localhost_config) as pw:
        futures = pw.map(fail_on_three, list(range(250)))
        pw.wait(futures)
        view = JobView(FunctionExecutor(config=localhost_config), _ref(futures))
        try:
            view.refresh()
            pages = [view.calls(offset=offset, limit=100) for offset in (0, 100, 200)]
            assert [len(p["calls"]) for p in pages] == [100, 100, 50] and pages[2]["total"] == 250
            assert [c["index"] for c in pages[1]["calls"]][:2] == [100, 101]
            failed = view.calls(status="error")
            assert failed["total"] == 1
            (row,) = failed["calls"]
            assert (row["index"], row["error"]["type"]) == (3, "KeyError")
            assert "no key 3" in row["error"]["message"] and "raise KeyError" in row["error"]["traceback"]
            assert view.summary()["first_errors"][0]["index"] == 3

            view.executor.storage.request_counts.clear()
            assert view.result_preview(7) == {
                "index": 7,
                "job_id": "M000",
                "call_id": "00007",
                "status": "success",
                "available": True,
                "value": {"value": 7},
                "type": "dict",
            }
            # the one output (segments: small outputs came with the poll)
            assert _requests(view) == ({"GET": 1} if view.executor.calls.layout == "objects" else {})
            assert "5,002 characters" in view.result_preview(4)["reason"]
            assert view.result_preview(3)["reason"] == "the call has no result: it is error"
            with pytest.raises(IndexError, match="out of range: the job has 250"):
                view.result_preview(250)
        finally:
            view.close()


def test_a_cleaned_job_is_reported_as_cleaned(
    localhost_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FunctionExecutor(config=localhost_config) as pw:
        futures = pw.map(lambda x: x, [1, 2])
        pw.wait(futures)
        view = JobView(FunctionExecutor(config=localhost_config), _ref(futures))
        try:
            view.refresh()
            pw.clean()
            assert view.result_preview(0)["reason"] == "the result was cleaned from storage"
            monkeypatch.setattr(reader, "CHECK_CLEANED_SECONDS", 0.0)
            with pytest.raises(JobCleaned, match="its results were cleaned"):
                view.refresh()
        finally:
            view.close()
        with pytest.raises(JobCleaned, match="is no longer in"):
            JobView(FunctionExecutor(config=localhost_config), _ref(futures))


def test_a_finished_job_with_more_statuses_than_one_poll_reads_is_shown_whole(
    localhost_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A view opened on a finished job shows every call done at its first refresh, even when the
    statuses are more than one poll reads (segments: a bounded read per segment and poll)."""
    with FunctionExecutor(config=localhost_config) as pw:
        futures = pw.map(lambda x: x, list(range(300)))
        pw.wait(futures)
        monkeypatch.setattr(segments, "READ_LIMIT", 4096)  # a few dozen records per poll
        view = JobView(FunctionExecutor(config=localhost_config), _ref(futures))
        try:
            view.refresh()
            summary = view.summary()
            assert (summary["done"], summary["success"], summary["pending"], summary["status"]) == (
                300,
                300,
                0,
                "success",
            )
            if view.executor.calls.layout == "segments":
                assert view.list_requests > 1  # it took several polls, made in one refresh
        finally:
            view.close()


def test_the_timeline_of_a_large_job_is_an_even_sample_and_a_bounded_running_series(
    localhost_config: dict[str, Any],
) -> None:
    with FunctionExecutor(config=localhost_config) as pw:
        futures = pw.map(lambda x: x, list(range(300)))
        pw.wait(futures)
        view = JobView(FunctionExecutor(config=localhost_config), _ref(futures))
        try:
            view.refresh()
            exact = view.timeline()  # below the bound: every bar, every change of the running count
            assert (exact["started"], exact["sampled"], len(exact["calls"])) == (300, False, 300)
            assert [row[0] for row in exact["calls"]] == list(range(300))
            assert exact["running"][-1][1] == 0 and 1 <= exact["peak"] <= localhost_config["localhost"]["workers"]

            sampled = view.timeline(max_bars=100, max_points=20)
            assert (sampled["started"], sampled["sampled"], sampled["total"]) == (300, True, 300)
            indexes = [row[0] for row in sampled["calls"]]
            assert len(indexes) == 100 and indexes[0] == 0 and indexes[-1] == 299
            assert sorted(set(indexes)) == indexes  # in call order, no call twice
            assert max(b - a for a, b in zip(indexes, indexes[1:])) <= 4  # spread evenly
            assert len(sampled["running"]) == 20 and sampled["peak"] == exact["peak"]
            assert max(n for _, n in sampled["running"]) == exact["peak"]  # the peak survives the slicing
            assert sampled["end"] == exact["end"] >= max(row[2] for row in exact["calls"])
        finally:
            view.close()


def test_running_over_time_is_exact_for_few_changes_and_keeps_peaks_when_sliced() -> None:
    steps, peak = reader.running_over_time([(0.0, 2.0), (1.0, 3.0), (1.0, 1.5)], 3.0, 100)
    assert (steps, peak) == ([[0.0, 1], [1.0, 3], [1.5, 2], [2.0, 1], [3.0, 0]], 3)

    # 10,000 calls of 1 s starting every 10 ms (about 100 running), and a burst of 500 calls of 1 ms
    spans = [(i / 100, i / 100 + 1.0) for i in range(10_000)] + [(50.2051, 50.2061)] * 500
    exact, exact_peak = reader.running_over_time(spans, 101.0, 100_000)
    assert len(exact) > 10_000 and exact_peak == max(n for _, n in exact) >= 600
    steps, peak = reader.running_over_time(spans, 101.0, 500)
    assert len(steps) == 500 and peak == exact_peak
    assert max(n for _, n in steps) == exact_peak  # the burst is shown although it lasts a tenth of a slice
    assert steps[0][0] == 0.0 and steps[-1][0] < 101.0 and [t for t, _ in steps] == sorted(t for t, _ in steps)


def test_sample_evenly_keeps_small_lists_whole_and_bounds_large_ones() -> None:
    assert reader.sample_evenly(list(range(5)), 10) == [0, 1, 2, 3, 4]
    sample = reader.sample_evenly(list(range(10_000)), reader.MAX_TIMELINE_BARS)
    assert len(sample) == 2000 and sample[0] == 0 and sample[-1] == 9999 and len(set(sample)) == 2000
