"""The remote invoker: one activation that invokes the calls of a large map from inside the cloud.

``handler.main`` dispatches here when the payload has ``invoke_batch`` (see
:mod:`airflow_pywren.executor.compute.ibm_cf`). The payload holds the job fields, the calls
(compressed) and the OpenWhisk endpoint, namespace and credential; each call is invoked
with the same REST client and retry policy as the client's. A call whose invocation
finally fails is recorded as failed in storage, so the client never waits for it.

Then, in one PUT, it stores the calls' activation ids (``keys.ACTIVATIONS``, ``{call_id:
activation_id}``) through the storage of the payload, even when it stops early on an error:
the client, which only learns the invoker's own activation id, writes nothing there for
these calls, and reads them to check the calls for lost activations.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow_pywren.executor import keys
from airflow_pywren.executor.compute.ibm_cf import OpenWhiskClient, decode_calls
from airflow_pywren.executor.errors import ComputeError
from airflow_pywren.executor.worker import handler
from airflow_pywren.version import __version__

logger = logging.getLogger(__name__)


def invoke_batch(args: dict[str, Any]) -> dict[str, Any]:
    """Invoke every call of ``args["invoke_batch"]``; return how many were invoked and failed."""
    batch = args["invoke_batch"]
    job = {key: value for key, value in args.items() if key != "invoke_batch"}
    calls = decode_calls(batch["calls"])
    action = batch["action"]
    activation_id = os.environ.get("__OW_ACTIVATION_ID", "")
    client = OpenWhiskClient.from_settings(
        batch["openwhisk"], user_agent=f"airflow-pywren/{__version__} remote-invoker/{activation_id}"
    )

    def invoke(call: dict[str, Any]) -> tuple[str | None, str | None]:
        try:
            return client.invoke(action, {**job, **call})
        except Exception as exc:  # never leave a call without an outcome
            return None, f"{type(exc).__name__}: {exc}"

    activations: dict[str, str] = {}
    failed = 0
    try:
        with ThreadPoolExecutor(
            min(client.max_concurrency, len(calls)) or 1, thread_name_prefix="pywren-remote"
        ) as pool:
            for call, (call_activation, error) in zip(calls, pool.map(invoke, calls)):
                if error is None and call_activation:
                    activations[call["call_id"]] = call_activation
                    continue
                failed += 1
                payload = {**job, **call}
                try:
                    handler.record_failure(
                        payload, ComputeError(f"the remote invoker could not invoke call {call['call_id']}: {error}")
                    )
                except Exception:
                    logger.exception("could not record the failed invocation of call %s", call["call_id"])
    finally:
        client.close()
        store_activations(job, activations)
    logger.info(
        "remote invoker %s: %d call(s) of job %s invoked, %d failed",
        activation_id,
        len(calls) - failed,
        job.get("job_id"),
        failed,
    )
    return {
        "executor_id": job.get("executor_id"),
        "job_id": job.get("job_id"),
        "invoked": len(calls) - failed,
        "failed": failed,
    }


def store_activations(job: dict[str, Any], activations: dict[str, str]) -> None:
    """Store the invoked calls' activation ids in one PUT (the client writes none for these calls)."""
    key = keys.job_key(job["prefix"], job["executor_id"], job["job_id"], keys.ACTIVATIONS)
    try:
        handler.storage_for(job["storage"]).put(key, json.dumps(activations).encode())
    except Exception as exc:
        raise ComputeError(
            f"the remote invoker invoked {len(activations)} call(s) but could not store their "
            f"activation ids at {key}: {type(exc).__name__}: {exc}"
        ) from exc
