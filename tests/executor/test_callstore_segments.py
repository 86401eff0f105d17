"""The localhost call layout: append-only segments of checksummed records."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor import keys, serialization
from airflow_pywren.executor.callstore import call_store_for
from airflow_pywren.executor.callstore.segments import HEADER, INLINE_OUTPUT_LIMIT, SegmentCallStore, encode_record
from airflow_pywren.executor.storage.localhost import LocalhostStorage
from tests.conftest import merge_config


@pytest.fixture
def storage(tmp_path: Path) -> LocalhostStorage:
    return LocalhostStorage({"storage_dir": str(tmp_path), "bucket": "b", "storage_prefix": "p"})


def _start(call_id: str) -> dict:
    return {"call_id": call_id, "status": "running", "start_time": time.time(), "worker_pid": os.getpid()}


def _final(call_id: str, status: str = "success") -> dict:
    now = time.time()
    return {
        "call_id": call_id,
        "status": status,
        "start_time": now,
        "end_time": now,
        "duration": 0.0,
        "error": None if status == "success" else {"type": "ValueError", "message": "bad"},
        "extra_meta": {},
    }


def _segments(storage: LocalhostStorage, job: str = "J1") -> list[Path]:
    return sorted(storage.local_path(keys.status_prefix("p", "e", job).rstrip("/")).glob("*.seg"))


def test_localhost_storage_uses_segments_and_cos_keeps_objects(storage):
    assert isinstance(call_store_for(storage), SegmentCallStore)
    assert call_store_for(storage) is call_store_for(storage)  # one store (and its caches) per storage
    from airflow_pywren.executor.storage.ibm_cos import IBMCOSStorage

    assert IBMCOSStorage.call_layout == "objects"


def test_a_call_reads_back_with_its_inline_output_from_one_segment(storage):
    calls = call_store_for(storage)
    output = serialization.dumps({"value": 42})
    calls.record_start("e", "J1", "00000", _start("00000"))
    calls.record_end("e", "J1", "00000", _final("00000"), output)
    assert len(_segments(storage)) == 1
    assert not storage.local_path(keys.job_prefix("p", "e", "J1") + "output").exists()
    status = calls.read_status("e", "J1", "00000")
    assert status["status"] == "success" and status["executor_id"] == "e" and status["job_id"] == "J1"
    assert status["output_key"] == keys.call_key("p", "e", "J1", "00000", keys.OUTPUT_OBJECT)
    assert serialization.loads(calls.read_output_key(status["output_key"])) == {"value": 42}


def test_a_large_output_gets_its_own_file_written_before_its_record(storage):
    calls = call_store_for(storage)
    output = b"x" * (INLINE_OUTPUT_LIMIT + 1)
    calls.record_end("e", "J1", "00000", _final("00000"), output)
    assert storage.get(keys.call_key("p", "e", "J1", "00000", keys.OUTPUT_OBJECT)) == output
    assert calls.read_output("e", "J1", "00000") == output


def test_a_poll_reads_only_what_was_appended_since_the_last_one(storage):
    calls = call_store_for(storage)
    view = calls.job("e", "J1")
    calls.record_start("e", "J1", "00000", _start("00000"))
    first = view.poll()
    assert list(first.started) == ["00000"] and not first.finished
    calls.record_end("e", "J1", "00000", _final("00000"), b"out")
    counts = dict(storage.request_counts)
    second = view.poll()
    assert list(second.finished) == ["00000"] and not second.started
    assert storage.request_counts["LIST"] - counts["LIST"] == 1  # one directory scan
    assert storage.request_counts["GET"] - counts["GET"] == 1  # one read of the segment that grew
    counts = dict(storage.request_counts)
    assert view.poll().finished == {} and storage.request_counts["GET"] == counts["GET"]


def test_a_record_cut_short_never_reads_as_a_success(storage):
    """A writer killed mid-write leaves a partial record: readers skip it, whatever its bytes."""
    calls = call_store_for(storage)
    calls.record_end("e", "J1", "00000", _final("00000"), b"ok")
    segment = _segments(storage)[0]
    whole = encode_record({"call_id": "00001", **_final("00001")}, b"value")
    for cut in (3, HEADER.size, HEADER.size + 5, len(whole) - 1):
        view = calls.job("e", "J1")
        with open(segment, "ab") as file:
            file.write(whole[:cut])
        assert set(view.poll().finished) == {"00000"}
        assert view.final("00001") is None
        with open(segment, "r+b") as file:  # undo, for the next cut
            file.truncate(segment.stat().st_size - cut)


def test_a_record_with_a_flipped_byte_is_not_read(storage):
    calls = call_store_for(storage)
    calls.record_end("e", "J1", "00000", _final("00000", "error"), None)
    segment = _segments(storage)[0]
    data = bytearray(segment.read_bytes())
    data[HEADER.size + 12] ^= 0x01
    segment.write_bytes(bytes(data))
    assert calls.job("e", "J1").poll().finished == {}


def _append_forever(storage_dir: str, ready: multiprocessing.synchronize.Event) -> None:
    storage = LocalhostStorage({"storage_dir": storage_dir, "bucket": "b", "storage_prefix": "p"})
    calls = call_store_for(storage)
    big = b"y" * (INLINE_OUTPUT_LIMIT - 1)
    index = 0
    while True:
        calls.record_end("e", "J1", f"{index:05d}", _final(f"{index:05d}"), big)
        index += 1
        if index == 20:
            ready.set()


def test_a_writer_killed_while_appending_leaves_only_whole_records(storage, tmp_path):
    ready = multiprocessing.get_context("fork").Event()
    writer = multiprocessing.get_context("fork").Process(target=_append_forever, args=(str(tmp_path), ready))
    writer.start()
    assert ready.wait(30)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    finished = call_store_for(storage).job("e", "J1").poll().finished
    assert len(finished) >= 20
    assert all(status["status"] == "success" for status in finished.values())
    for call_id in finished:
        assert len(call_store_for(storage).read_output("e", "J1", call_id)) == INLINE_OUTPUT_LIMIT - 1


def test_a_success_recorded_after_an_error_wins(storage):
    """A late worker's result is not hidden by a lost-call record written by another process."""
    calls = call_store_for(storage)
    calls.record_end("e", "J1", "00000", _final("00000", "error"), None)
    other = SegmentCallStore(storage)  # another writer: its own segment in this process
    from airflow_pywren.executor.callstore import segments

    segments._appender = None
    other.record_end("e", "J1", "00000", _final("00000"), b"late")
    assert len(_segments(storage)) == 2
    assert SegmentCallStore(storage).read_status("e", "J1", "00000")["status"] == "success"


def test_a_forked_process_writes_its_own_segment(storage):
    calls = call_store_for(storage)
    calls.record_start("e", "J1", "00000", _start("00000"))
    pid = os.fork()
    if pid == 0:
        try:
            calls.record_start("e", "J1", "00001", _start("00001"))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert len(_segments(storage)) == 2
    assert set(calls.job("e", "J1").poll().started) == {"00000", "00001"}


def test_a_map_leaves_at_most_one_file_per_call_and_under_1kb_each(localhost_config):
    pw = pywren.FunctionExecutor(config=localhost_config)
    n = 300
    assert pw.get_result(pw.map(abs, range(n))) == list(range(n))
    root = pw.storage.local_path(keys.executor_prefix(pw.storage.prefix, pw.executor_id).rstrip("/"))
    files = [Path(d) / name for d, _, names in os.walk(root) for name in names]
    assert len(files) <= n
    assert sum(f.stat().st_size for f in files) / n < 1024
    other = pywren.FunctionExecutor(config=localhost_config)  # attach by id, as another process would
    attached = other.job_futures("M000", executor_id=pw.executor_id)
    assert other.get_result(attached) == list(range(n))
    assert all(f.worker_pid and f.start_time <= f.end_time for f in attached)
    pw.clean()


def test_waiting_reads_a_backlog_of_statuses_without_pausing_between_polls(localhost_config, monkeypatch):
    """A poll that stops at the read limit is followed at once: the monitor pauses only when it has read everything."""
    from airflow_pywren.executor.callstore import segments
    from airflow_pywren.executor.monitor import storage as storage_monitor

    with pywren.FunctionExecutor(config=localhost_config) as pw:
        futures = pw.map(abs, list(range(300)))
        pw.wait(futures)
        monkeypatch.setattr(segments, "READ_LIMIT", 4096)  # a few dozen records per poll
        pauses: list[float] = []
        monkeypatch.setattr(storage_monitor.time, "sleep", pauses.append)
        slow = merge_config(localhost_config, {"pywren": {"monitor_interval": 5}})
        with pywren.FunctionExecutor(config=slow, executor_id=pw.executor_id) as attached:
            fresh = attached.job_futures(futures[0].job_id)
            done, not_done = attached.wait(fresh)
        assert len(done) == 300 and not not_done
        assert pauses == []  # every poll but the last stopped at the limit, and the last finished the job
        pw.clean()
