"""Signed pickles: no object from storage is unpickled unless it carries a valid signature of the configured key."""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path
from typing import Any

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor import keys
from airflow_pywren.executor.callstore import call_store_for, segments
from airflow_pywren.executor.jobs import job_reference
from airflow_pywren.executor.serialization import ResultRef
from airflow_pywren.executor.signing import SignatureError
from tests.conftest import BACKEND_PARAMS, CONTAINER_BACKEND_PARAMS, merge_config

KEY_A = "a" * 32
KEY_B = "b" * 32


class Planted:
    """Unpickling this creates a directory: proof that planted code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


def planted_pickle(marker: Path) -> bytes:
    return pickle.dumps(Planted(str(marker)))


def tampered(signed: bytes, marker: Path) -> bytes:
    """A signed object's header followed by a planted pickle."""
    from airflow_pywren.executor.signing import HEADER_SIZE

    return signed[:HEADER_SIZE] + planted_pickle(marker)


def square(x):
    return x * x


def fail(x):
    raise ValueError(f"bad {x}")


def add_one(x):
    return x + 1


def total(values):
    return sum(values)


def stored_output(storage, executor_id: str, job_id: str, call_id: str) -> bytes:
    return call_store_for(storage).read_output(executor_id, job_id, call_id)


def replace_stored_output(storage, executor_id: str, job_id: str, call_id: str, blob: bytes) -> None:
    """Overwrite a call's stored output as someone with write access to storage could, whatever the layout."""
    store = call_store_for(storage)
    if store.layout == "objects":
        storage.put(store.output_key(executor_id, job_id, call_id), blob)
        return
    view = store.job(executor_id, job_id)
    view.poll()
    segment_name, offset, _ = view._finals[call_id]
    segment = view.directory / segment_name
    records, _ = segments.decode_records(segment.read_bytes())
    rewritten = b""
    for at, record, output in records:
        if at == offset and record.get("output") == "object":
            storage.put(store.output_key(executor_id, job_id, call_id), blob)
        elif at == offset:
            output = blob  # the record keeps a valid checksum: only the signature can tell
        rewritten += segments.encode_record(record, output if record.get("output") == "inline" else None)
    segment.write_bytes(rewritten)
    store.forget(executor_id, job_id)


def replace_output(executor, future, blob: bytes) -> None:
    replace_stored_output(executor.storage, future.executor_id, future.job_id, future.call_id, blob)


@pytest.mark.parametrize("executor_config", [*BACKEND_PARAMS, *CONTAINER_BACKEND_PARAMS], indirect=True)
@pytest.mark.parametrize("how", ["planted", "tampered", "empty"])
def test_replaced_result_is_refused_on_every_backend(executor_config, tmp_path: Path, how: str) -> None:
    marker = tmp_path / "planted-code-ran"
    with pywren.FunctionExecutor(config=executor_config) as executor:
        futures = executor.map(square, [1, 2, 3])
        assert executor.get_result(futures) == [1, 4, 9]  # the function side signs what it writes
        original = stored_output(executor.storage, executor.executor_id, futures[1].job_id, futures[1].call_id)
        blob = {"planted": planted_pickle(marker), "tampered": tampered(original, marker), "empty": b""}[how]
        replace_output(executor, futures[1], blob)
        again = executor.job_futures(futures[0].job_id)
        with pytest.raises(SignatureError, match=f"call 00001 of job {futures[0].job_id}") as info:
            executor.get_result(again)
        assert "signing key" in str(info.value) and "fingerprint" in str(info.value)
        with pytest.raises(SignatureError):
            executor.job_futures(futures[0].job_id)[1].result()
        assert not marker.exists()
        executor.clean()


def test_replaced_exception_is_refused(pw, tmp_path: Path) -> None:
    marker = tmp_path / "planted-code-ran"
    future = pw.call_async(fail, 1)
    assert isinstance(future.exception(), ValueError)
    replace_output(pw, future, planted_pickle(marker))
    attached = pw.job_futures(future.job_id)[0]
    with pytest.raises(SignatureError, match="the exception of call 00000 .* is not signed"):
        attached.exception()
    with pytest.raises(SignatureError):
        attached.result()
    assert not marker.exists()


def _tamper_before_invoke(executor, monkeypatch, name: str, blob_for) -> None:
    """Replace a staged object of the next job just before it is invoked (the calls then read it)."""
    real_invoke = executor.compute.invoke

    def invoke(job, calls):
        key = keys.job_key(job["prefix"], job["executor_id"], job["job_id"], name)
        executor.storage.put(key, blob_for(executor.storage.get(key)))
        return real_invoke(job, calls)

    monkeypatch.setattr(executor.compute, "invoke", invoke)


@pytest.mark.parametrize("name", [keys.FUNC_OBJECT, keys.DATA_OBJECT])
@pytest.mark.parametrize("how", ["planted", "tampered"])
def test_worker_refuses_replaced_function_or_data(pw, monkeypatch, tmp_path: Path, name: str, how: str) -> None:
    marker = tmp_path / "planted-code-ran"
    if how == "planted":
        _tamper_before_invoke(pw, monkeypatch, name, lambda original: planted_pickle(marker))
    else:
        _tamper_before_invoke(pw, monkeypatch, name, lambda original: tampered(original, marker) + original[200:])
    futures = pw.map(square, [1, 2])
    pw.wait(futures)
    assert all(f.status == "error" for f in futures)
    error = futures[0].error
    assert error["type"] == "SignatureError"
    assert ("is not signed" in error["message"]) if how == "planted" else ("signature check" in error["message"])
    assert "signing key" in error["message"]
    with pytest.raises(SignatureError):
        pw.get_result(futures)
    assert not marker.exists()


def test_worker_refuses_a_replaced_upstream_result(pw, tmp_path: Path) -> None:
    marker = tmp_path / "planted-code-ran"
    upstream = pw.map(square, [1, 2, 3])
    assert pw.get_result(upstream) == [1, 4, 9]
    refs = [ResultRef(f.output_key) for f in upstream]
    replace_output(pw, upstream[2], planted_pickle(marker))
    downstream = pw.map(add_one, refs)
    pw.wait(downstream)
    assert [f.status for f in downstream] == ["success", "success", "error"]
    assert downstream[2].error["type"] == "SignatureError" and "upstream result" in downstream[2].error["message"]
    assert not marker.exists()


def test_reducer_refuses_a_replaced_map_output(pw, monkeypatch, tmp_path: Path) -> None:
    marker = tmp_path / "planted-code-ran"
    real_invoke = pw.compute.invoke

    def invoke(job, calls):
        if job["job_id"].startswith("R"):
            map_job = calls[0]["reduce"]["job_id"]
            replace_stored_output(pw.storage, job["executor_id"], map_job, "00001", planted_pickle(marker))
        return real_invoke(job, calls)

    monkeypatch.setattr(pw.compute, "invoke", invoke)
    futures = pw.map_reduce(square, [1, 2, 3], total, reducer_wait_local=True)
    with pytest.raises(SignatureError, match="the output of map call 00001"):
        pw.get_result(futures)
    assert not marker.exists()


def test_another_key_cannot_read_and_rotation_keeps_old_results(localhost_config) -> None:
    with pywren.FunctionExecutor(config=merge_config(localhost_config, {"pywren": {"signing_key": KEY_A}})) as first:
        futures = first.map(square, [1, 2])
        assert first.get_result(futures) == [1, 4]
        job_id, executor_id = futures[0].job_id, first.executor_id
        other = merge_config(localhost_config, {"pywren": {"signing_key": KEY_B}})
        with pywren.FunctionExecutor(config=other, executor_id=executor_id) as second:
            with pytest.raises(
                SignatureError,
                match="signed with another key .* not with the signing key pywren.signing_key .*previous_signing_keys",
            ):
                second.get_result(second.job_futures(job_id))
        rotated = merge_config(localhost_config, {"pywren": {"signing_key": KEY_B, "previous_signing_keys": [KEY_A]}})
        with pywren.FunctionExecutor(config=rotated, executor_id=executor_id) as third:
            assert third.get_result(third.job_futures(job_id)) == [1, 4]
            new = third.map(square, [3])
            assert third.get_result(new) == [9]
        with pywren.FunctionExecutor(
            config=merge_config(localhost_config, {"pywren": {"signing_key": KEY_A}}), executor_id=executor_id
        ) as old_key_only:
            with pytest.raises(SignatureError, match="signed with another key"):
                old_key_only.get_result(old_key_only.job_futures(new[0].job_id))
        first.clean()


def test_default_key_file_is_private_whatever_the_umask(localhost_config, tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "signing.key"
    config = merge_config(localhost_config, {"pywren": {"signing_key_file": str(key_file)}})
    previous = os.umask(0)
    try:
        with pywren.FunctionExecutor(config=config) as executor:
            assert executor.get_result(executor.call_async(square, 3)) == 9
            executor.clean()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert len(key_file.read_text().strip()) == 64
    key_file.chmod(0o644)
    with pytest.raises(pywren.PyWrenConfigError, match="must belong to this user .* with mode 0600"):
        pywren.FunctionExecutor(config=config)


def test_short_signing_key_is_refused(localhost_config) -> None:
    with pytest.raises(pywren.PyWrenConfigError, match="'pywren.signing_key' must be a string of at least 16"):
        pywren.FunctionExecutor(config=merge_config(localhost_config, {"pywren": {"signing_key": "short"}}))


# ------------------------------------------------------------------ Airflow: the hook, a downstream task and map
@pytest.mark.airflow
@pytest.mark.parametrize("executor_config", ["localhost", "localhost+ibm_cos"], indirect=True)
@pytest.mark.parametrize("how", ["planted", "tampered", "empty"])
def test_hook_get_results_refuses_a_replaced_result(
    airflow_home, executor_config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, how: str
) -> None:
    from airflow_pywren.hooks.pywren import PyWrenHook
    from tests.airflow.conftest import CONN_ENV, connection_json

    marker = tmp_path / "planted-code-ran"
    monkeypatch.setenv(CONN_ENV, connection_json(executor_config, signing_key=KEY_A))  # the connection's key field
    hook = PyWrenHook()
    with hook.get_conn() as executor:
        futures = executor.map(square, [1, 2, 3])
        assert executor.get_result(futures) == [1, 4, 9]
        ref = job_reference(executor, "map", futures)
        key = executor.signer.describe()
        assert hook.get_results(ref) == [1, 4, 9]
        original = stored_output(executor.storage, executor.executor_id, futures[1].job_id, futures[1].call_id)
        blob = {"planted": planted_pickle(marker), "tampered": tampered(original, marker), "empty": b""}[how]
        replace_output(executor, futures[1], blob)
        with pytest.raises(SignatureError, match=f"call 00001 of job {futures[1].job_id}") as info:
            hook.get_results(ref)
        assert key in str(info.value)  # names the key: where it comes from and its fingerprint
        assert KEY_A not in str(info.value) and KEY_A.encode().hex() not in str(info.value)
        assert not marker.exists()
        executor.clean()


TAMPERED_DAG = """
import json
from pathlib import Path

from tests.faults.test_signed_pickles import planted_pickle, replace_stored_output, stored_output

MARKER = Path({marker!r})


def square(x):
    return x * x


def add_one(x):
    return x + 1


@dag(dag_id="tampered_result", schedule=None, start_date=START, catchup=False)
def tampered_result():
    squares = PyWrenMapOperator(task_id="squares", map_function=square, iterdata=[1, 2, 3], poll_interval=0.05)

    @task
    def plant(ref):
        with PyWrenHook().get_conn(executor_id=ref["executor_id"]) as executor:
            job_id = ref["job_ids"][0]
            replace_stored_output(executor.storage, ref["executor_id"], job_id, "00001", planted_pickle(MARKER))
        with PyWrenHook().get_conn(executor_id=ref["executor_id"]) as reader:  # what any reader now finds
            assert stored_output(reader.storage, ref["executor_id"], job_id, "00001") == planted_pickle(MARKER)

    @task(retries=0)
    def read(ref):
        return PyWrenHook().get_results(ref)

    plus_one = PyWrenMapOperator(
        task_id="plus_one", map_function=add_one, iterdata=squares.output, poll_interval=0.05, retries=0
    )
    plant(squares.output) >> [read(squares.output), plus_one]


tampered_result()
"""


@pytest.mark.airflow
def test_a_replaced_result_fails_the_downstream_task_and_map_that_read_it(
    airflow_home, localhost_config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    from tests.airflow.conftest import CONN_ENV, connection_json

    marker = tmp_path / "planted-code-ran"
    monkeypatch.setenv(CONN_ENV, connection_json(localhost_config, signing_key=KEY_A))
    result = airflow_home.write_and_run("tampered_result", TAMPERED_DAG.format(marker=str(marker)), header=True)
    logs = capfd.readouterr().out
    assert result.task_states == {
        "squares": "success",
        "plant": "success",
        "read": "failed",
        "plus_one": "failed",
    }, logs[-3000:]
    # the Python task reading the results, in the Airflow worker
    assert "SignatureError" in logs and "the output of call 00001 of job M000" in logs
    assert "the signing key pywren.signing_key (fingerprint" in logs
    # the downstream map: its call 00001 refused the upstream result inside the call, the others ran
    assert "1 of 3 call(s) of map job M000 failed" in logs
    upstream_key = result.xcom("squares")["result_key_pattern"].format(call_id="00001")
    assert f"job M000 call 00001 failed: SignatureError: the upstream result '{upstream_key}' is not signed" in logs
    assert not marker.exists()
    with pywren.FunctionExecutor(
        config=merge_config(localhost_config, {"pywren": {"signing_key": KEY_A}}),
        executor_id=result.xcom("squares")["executor_id"],
    ) as executor:
        executor.clean()
