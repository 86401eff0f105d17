"""The invocation record keeps a job's activation ids compactly: consecutive runner ids as runs, others as they are."""

from __future__ import annotations

import json
import secrets

from airflow_pywren.executor import keys
from airflow_pywren.executor.compute.localhost import RunnerInvocations
from airflow_pywren.executor.invocation import InvocationProgress, pack_activations, unpack_activations


def test_consecutive_runner_ids_pack_into_runs_and_unpack_to_the_same_ids():
    ids = {keys.call_id_of(i): f"local-4242-{700 + i}" for i in range(100_000)}
    runs, others = pack_activations(ids)
    assert (runs, others) == ([[0, 100_000, "local-4242-", 700]], {})
    assert unpack_activations(runs, others) == ids


def test_ids_that_do_not_follow_on_are_kept_as_they_are():
    ids = {keys.call_id_of(i): secrets.token_hex(16) for i in range(20)}  # OpenWhisk's: random hex
    ids.update({"00020": "local-1-9", "00021": "local-1-10", "00022": "local-1-011", "00023": "ns/act-5"})
    ids["7"] = "local-1-12"  # not a canonical call id
    runs, others = pack_activations(ids)
    assert runs == [[20, 2, "local-1-", 9]]
    assert set(others) == set(ids) - {"00020", "00021"}
    assert unpack_activations(runs, others) == ids


def test_a_complete_record_round_trips_and_an_old_record_without_runs_still_reads():
    ids = {keys.call_id_of(i): f"local-9-{i}" for i in range(5)} | {"00005": "other"}
    record = json.loads(InvocationProgress.finished(6, ids).to_json())
    assert record["activation_runs"] == [[0, 5, "local-9-", 0]] and record["activations"] == {"00005": "other"}
    assert unpack_activations(record["activation_runs"], record["activations"]) == ids
    assert unpack_activations((), {"00000": "a"}) == {"00000": "a"}  # a record written before runs existed


def test_runner_invocations_make_each_id_from_the_first_sequence():
    invocations = RunnerInvocations(["00000", "00001", "00002"], "local-7-", 40)
    assert [i.activation_id for i in invocations] == ["local-7-40", "local-7-41", "local-7-42"]
    assert invocations[-1].call_id == "00002" and [i.call_id for i in invocations[1:]] == ["00001", "00002"]
    assert len(invocations) == 3 and invocations[1].error is None
