"""A job's data object: one signed pickle per call; plain scalars that are the one argument are stored bare."""

from __future__ import annotations

import json
import pickle

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor import keys
from airflow_pywren.executor.calls import CallData, stage_items, unstage
from airflow_pywren.executor.signing import Signer

SIGNER = Signer(b"k" * 32)


def one(x):
    return x


def two(x, y):
    return x + y


def _unpickled(staged, index):
    start, end = staged.ranges[index]
    return unstage(pickle.loads(SIGNER.verify(staged.blob[start:end], "test data")), staged.bare)


@pytest.mark.parametrize("items", [[1, 2.5, "s", b"b", True, None], list(range(5))])
def test_plain_scalars_of_a_one_argument_function_are_stored_bare(items):
    staged = stage_items(one, items, signer=SIGNER)
    assert staged.bare
    assert [_unpickled(staged, i) for i in range(len(items))] == [CallData(args=(item,)) for item in items]
    as_call_data = stage_items(one, [*items, [0]], signer=SIGNER)  # a list item: every item as a CallData
    assert not as_call_data.bare
    assert all(e - s < e2 - s2 for (s, e), (s2, e2) in zip(staged.ranges, as_call_data.ranges))


@pytest.mark.parametrize(
    ("func", "items", "expected"),
    [
        (one, [1, [2, 3]], [CallData(args=(1,)), CallData(args=([2, 3],))]),  # one item is not a scalar
        (two, [(1, 2), {"x": 1, "y": 2}], [CallData(args=(1, 2)), CallData(kwargs={"x": 1, "y": 2})]),
    ],
)
def test_other_items_are_stored_as_call_data(func, items, expected):
    staged = stage_items(func, items, signer=SIGNER)
    assert not staged.bare
    assert [_unpickled(staged, i) for i in range(len(items))] == expected


def test_a_map_over_bare_and_over_bound_items_returns_the_same(localhost_config):
    pw = pywren.ibm_cf_executor(config=localhost_config)
    bare = pw.map(one, [3, "a", None])
    bound = pw.map(one, [3, "a", None, {"x": [1]}])
    assert pw.get_result(bare) == [3, "a", None] and pw.get_result(bound) == [3, "a", None, [1]]
    storage = pw.storage
    manifests = [
        json.loads(storage.get(keys.job_key(storage.prefix, pw.executor_id, job, keys.JOB_MANIFEST)))
        for job in (bare[0].job_id, bound[0].job_id)
    ]
    assert [m["data_bare"] for m in manifests] == [True, False]


def test_a_call_list_builds_each_call_from_the_data_ends_and_slices_without_copying_calls():
    from airflow_pywren.executor.compute.base import CallList

    calls = CallList(["00000", "00001", "00002"], [10, 25, 40], None)
    assert list(calls) == [
        {"call_id": "00000", "data_byte_range": [0, 10]},
        {"call_id": "00001", "data_byte_range": [10, 25]},
        {"call_id": "00002", "data_byte_range": [25, 40]},
    ]
    assert list(calls[1:]) == list(calls)[1:] and len(calls[1:]) == 2
    missing = CallList(["00002"], [10, 25, 40], None)  # a later invocation of some calls only: ranges by call index
    assert missing[0] == {"call_id": "00002", "data_byte_range": [25, 40]}
    reduces = CallList(["00000"], None, [{"job_id": "M000", "call_ids": ["00000"]}])
    assert reduces[0] == {
        "call_id": "00000",
        "data_byte_range": [0, 0],
        "reduce": {"job_id": "M000", "call_ids": ["00000"]},
    }
