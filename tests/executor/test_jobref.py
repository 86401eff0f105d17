"""The job model: JobRef parsing and writing, its size whatever the number of calls, and the status enums."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_pywren.executor import keys
from airflow_pywren.executor.jobref import CallStatus, JobRef, JobRefError, JobStatus
from airflow_pywren.executor.storage.localhost import LocalhostStorage

PREFIX = "pywren.jobs"
NEW = {
    "executor_id": "e1",
    "kind": "map",
    "job_ids": ["M000"],
    "result_job_id": "M000",
    "storage_backend": "localhost",
    "bucket": "pywren",
    "storage_prefix": PREFIX,
    "location": "file:///tmp/s/pywren/pywren.jobs",
    "total": 3,
    "result_count": 3,
    "result_key_pattern": f"{PREFIX}/e1/M000/output/{{call_id}}.pickle",
}
OLD = {  # written by earlier versions: every key listed
    "executor_id": "e1",
    "kind": "map_reduce",
    "job_ids": ["M000", "R001"],
    "result_job_id": "R001",
    "total": 3,
    "storage_prefix": PREFIX,
    "result_keys": [f"{PREFIX}/e1/R001/output/00000.pickle"],
    "status": "success",
    "done": 3,
    "failed": 0,
}


class _Future:
    def __init__(self, job_id: str, call_id: str, produce_output: bool = True) -> None:
        self.job_id, self.call_id, self.produce_output = job_id, call_id, produce_output


@pytest.mark.parametrize("form", ["dict", "json", "repr", "padded repr"])
def test_every_accepted_form_parses_to_the_same_reference(form: str) -> None:
    value = {"dict": NEW, "json": json.dumps(NEW), "repr": repr(NEW), "padded repr": f"  {NEW!r}\n"}[form]
    ref = JobRef.parse(value)
    assert ref == JobRef.parse(NEW)
    assert ref.to_xcom() == NEW
    assert ref.result_keys == [f"{PREFIX}/e1/M000/output/0000{i}.pickle" for i in range(3)]
    assert JobRef.parse(ref) is ref


def test_progress_and_connection_round_trip_as_plain_json() -> None:
    ref = JobRef.parse(NEW).with_progress(JobStatus.SUCCESS, 3, 0).with_conn_id("pywren_ops")
    xcom = ref.to_xcom()
    assert (xcom["status"], xcom["done"], xcom["failed"], xcom["pywren_conn_id"]) == ("success", 3, 0, "pywren_ops")
    assert type(xcom["status"]) is str  # plain JSON types only: XCom must serialize it
    assert JobRef.parse(json.dumps(xcom)) == ref


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "job_ref must be the job reference dict a PyWren operator pushes to XCom, got NoneType"),
        ("None", "job_ref must be the job reference dict"),
        ("", "job_ref rendered to text that is not a job reference"),
        ("{{ ti.xcom_pull", "job_ref rendered to text that is not a job reference"),
        ([NEW], "job_ref must be the job reference dict a PyWren operator pushes to XCom, got list"),
        ({"kind": "map"}, "job_ref lacks executor_id, job_ids"),
        ({**NEW, "job_ids": "M000"}, r"job_ref\['job_ids'\] must be a list of job ids"),
        ({**NEW, "total": "3"}, r"job_ref\['total'\] must be a whole number, got '3'"),
        ({**NEW, "status": "finished"}, "job_ref has status 'finished'; expected one of submitted, running, success"),
        ({**OLD, "result_keys": "k"}, r"job_ref\['result_keys'\] must be a list of storage keys"),
    ],
)
def test_bad_input_is_refused_naming_the_problem(value: Any, message: str) -> None:
    with pytest.raises(JobRefError, match=message) as info:
        JobRef.parse(value)
    assert isinstance(info.value, ValueError)  # callers that expect a ValueError keep working


def test_old_references_with_explicit_keys_still_read_and_round_trip() -> None:
    ref = JobRef.parse(OLD)
    assert ref.result_keys == OLD["result_keys"] and ref.results_total == 1
    assert ref.result_key(0) == OLD["result_keys"][0]
    assert (ref.status, ref.done, ref.failed) == (JobStatus.SUCCESS, 3, 0)
    assert ref.to_xcom() == OLD
    # a reference without result_job_id (older still) takes the last job's results
    assert JobRef.parse({k: v for k, v in OLD.items() if k != "result_job_id"}).result_job_id == "R001"


def test_a_reference_without_keys_says_so() -> None:
    compact = {k: v for k, v in OLD.items() if k != "result_keys"}
    ref = JobRef.parse(compact)
    assert not ref.knows_results
    with pytest.raises(JobRefError, match="does not say where its results are"):
        ref.result_key(0)
    found = ref.with_results("R001", [f"{PREFIX}/e1/R001/output/00000.pickle"])
    assert found.knows_results and found.result_count == 1 and found.legacy_result_keys is None


def test_the_reference_of_a_huge_map_stays_small(tmp_path: Any) -> None:
    storage = LocalhostStorage({"storage_dir": str(tmp_path), "bucket": "pywren", "storage_prefix": PREFIX})
    futures = [_Future("M000", keys.call_id_of(i)) for i in range(100_000)]
    ref = JobRef.from_futures("map", futures, storage, "af0123456789abcd")  # type: ignore[arg-type]
    xcom = json.dumps(ref.with_progress(JobStatus.SUCCESS, 100_000, 0).with_conn_id("pywren_default").to_xcom())
    assert len(xcom) < 1024, xcom
    assert (ref.total, ref.result_count) == (100_000, 100_000)
    assert ref.result_key(99_999) == keys.call_key(PREFIX, "af0123456789abcd", "M000", "99999", keys.OUTPUT_OBJECT)
    with pytest.raises(IndexError, match="has 100000 result"):
        ref.result_key(100_000)


def test_a_map_reduce_reference_points_at_the_reducer(tmp_path: Any) -> None:
    storage = LocalhostStorage({"storage_dir": str(tmp_path), "bucket": "pywren", "storage_prefix": PREFIX})
    futures = [_Future("M000", keys.call_id_of(i), produce_output=False) for i in range(4)] + [_Future("R001", "00000")]
    ref = JobRef.from_futures("map_reduce", futures, storage, "e1")  # type: ignore[arg-type]
    assert (ref.job_ids, ref.result_job_id, ref.total, ref.result_count) == (("M000", "R001"), "R001", 5, 1)
    assert ref.result_keys == [keys.call_key(PREFIX, "e1", "R001", "00000", keys.OUTPUT_OBJECT)]
    assert ref.name == "M000+R001" and ref.describe() == "map_reduce job M000+R001 of executor e1"


def test_statuses_are_their_strings_and_know_when_they_are_final() -> None:
    assert [s for s in CallStatus if s.is_terminal()] == [CallStatus.SUCCESS, CallStatus.ERROR]
    assert [s for s in JobStatus if s.is_terminal()] == [JobStatus.SUCCESS, JobStatus.ERROR]
    assert CallStatus("success") == "success" and f"{JobStatus.SUBMITTED}" == str(JobStatus.SUBMITTED) == "submitted"
    assert json.dumps({"status": CallStatus.ERROR}) == '{"status": "error"}'
