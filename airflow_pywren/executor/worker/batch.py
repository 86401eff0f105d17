"""The batch entry point of the runtime image: one worker runs its slice of a job's calls.

Kubernetes Indexed Jobs (``k8s``) and Code Engine array job runs (``code_engine``) start one
container per index; each gets the job's payload in the file named by ``PYWREN_PAYLOAD_FILE``
(a mounted secret: no size limit of the environment) or in ``PYWREN_PAYLOAD``, and its index in ``JOB_COMPLETION_INDEX`` (Kubernetes) or ``JOB_INDEX`` (Code Engine). Index
``i`` runs calls ``[i * calls_per_worker, (i + 1) * calls_per_worker)`` one after another
through the same handler as every other backend (``handler.run_call``), so each call writes
its own start, output and final status. A container that dies mid-slice leaves the calls it
did not finish without a final status; the client's lost-call check fails exactly those.

Payload (``encode_payload``: JSON, zlib, base64): the job's fields (``{**job}`` as the
executor builds it, storage settings included), ``calls`` (the per-call fields, encoded),
``calls_per_worker`` and ``activation_prefix``; a call's activation id is
``{activation_prefix}/{index}``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

PAYLOAD_ENV = "PYWREN_PAYLOAD"
PAYLOAD_FILE_ENV = "PYWREN_PAYLOAD_FILE"
INDEX_ENVS = ("JOB_COMPLETION_INDEX", "JOB_INDEX")

logger = logging.getLogger(__name__)


def encode_payload(
    job: dict[str, Any], calls: Sequence[dict[str, Any]], calls_per_worker: int, activation_prefix: str
) -> str:
    """The text of ``PYWREN_PAYLOAD`` for a job (compressed: byte ranges and ids compress well)."""
    body = {
        "job": job,
        "calls": list(calls),
        "calls_per_worker": int(calls_per_worker),
        "activation_prefix": activation_prefix,
    }
    return base64.b64encode(zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 6)).decode()


def decode_payload(text: str) -> dict[str, Any]:
    return json.loads(zlib.decompress(base64.b64decode(text)))


def worker_index(environ: dict[str, str] | None = None) -> int:
    """This container's index, from the platform's variable."""
    environ = dict(os.environ if environ is None else environ)
    for name in INDEX_ENVS:
        if environ.get(name, "").strip():
            return int(environ[name])
    raise RuntimeError(f"no worker index: none of {', '.join(INDEX_ENVS)} is set")


def activation_id(prefix: str, index: int) -> str:
    return f"{prefix}/{index}"


def slice_of(payload: dict[str, Any], index: int) -> list[dict[str, Any]]:
    """The calls that worker ``index`` runs."""
    per = int(payload["calls_per_worker"])
    return payload["calls"][index * per : (index + 1) * per]


def run_slice(payload: dict[str, Any], index: int) -> int:
    """Run the calls of index ``index``; how many ended in error (their statuses say why)."""
    from airflow_pywren.executor.jobref import CallStatus
    from airflow_pywren.executor.worker import handler

    job = payload["job"]
    aid = activation_id(payload["activation_prefix"], index)
    failed = 0
    for call in slice_of(payload, index):
        result = handler.run_call({**job, **call, "activation_id": aid})
        failed += result.get("status") != CallStatus.SUCCESS
    return failed


def main() -> int:
    """Run this container's slice; exit 0 once every call has recorded its status (errors included)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    text = os.environ.get(PAYLOAD_ENV)
    if not text and os.environ.get(PAYLOAD_FILE_ENV):
        with open(os.environ[PAYLOAD_FILE_ENV]) as payload_file:
            text = payload_file.read()
    if not text:
        print(f"airflow-pywren batch worker: neither {PAYLOAD_ENV} nor {PAYLOAD_FILE_ENV} is set", file=sys.stderr)
        return 2
    payload = decode_payload(text)
    index = worker_index()
    calls = slice_of(payload, index)
    print(
        f"airflow-pywren batch worker: index {index}, {len(calls)} call(s) of job {payload['job']['job_id']}",
        flush=True,
    )
    failed = run_slice(payload, index)
    print(f"airflow-pywren batch worker: index {index} done, {failed} call(s) ended in error", flush=True)
    return 0


def record_cancelled(
    job: dict[str, Any], call_ids: Sequence[str], calls_per_worker: int, activation_prefix: str, why: str
) -> int:
    """Client side, after stopping a batch job: fail its calls without a final status (CallCancelledError)."""
    from airflow_pywren.executor.errors import CallCancelledError
    from airflow_pywren.executor.monitor.storage import read_status
    from airflow_pywren.executor.worker import handler

    storage = handler.storage_for(job["storage"])
    recorded = 0
    for number, call_id in enumerate(call_ids):
        if read_status(storage, job["executor_id"], job["job_id"], call_id) is not None:
            continue
        aid = activation_id(activation_prefix, number // calls_per_worker)
        handler.record_failure(
            {**job, "call_id": call_id, "activation_id": aid},
            CallCancelledError(f"call {call_id} of job {job['job_id']} was cancelled ({why})"),
        )
        recorded += 1
    return recorded


def is_batch_environment(environ: Mapping[str, str] | None = None) -> bool:
    """True inside a Kubernetes Job or Code Engine job run started by this package."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    return bool(env.get(PAYLOAD_ENV) or env.get(PAYLOAD_FILE_ENV))
