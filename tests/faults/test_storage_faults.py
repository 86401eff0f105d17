"""Storage faults: an outage longer than the SDK's retries, a full disk. No call waits forever, none is lost silently."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor.compute.localhost import LocalhostCompute
from airflow_pywren.executor.errors import ActivationLostError, StorageError
from airflow_pywren.executor.storage.localhost import LocalhostStorage
from tests.conftest import merge_config
from tests.storage.servers import FaultProxy


def slow_square(x):
    import time

    time.sleep(0.5)
    return x * x


def big_value(n):
    return b"x" * n


@pytest.fixture
def fault_proxy(s3_server: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(s3_server)
    proxy.start()
    yield proxy
    proxy.fail_next(0)
    proxy.stop()


def proxied_cos(
    localhost_config, cos_config, proxy: FaultProxy, compute: str, openwhisk_server=None, **pywren_settings: Any
) -> dict[str, Any]:
    config = merge_config(
        localhost_config,
        cos_config,
        {
            "ibm_cos": {"endpoint": proxy.url, "max_attempts": 2},
            "pywren": {"monitor_interval": 0.05, **pywren_settings},
        },
    )
    if compute == "ibm_cf":
        config = merge_config(
            config,
            {
                "pywren": {"compute_backend": "ibm_cf"},
                "ibm_cf": {**openwhisk_server.settings(), "lost_check_interval": 0},
            },
        )
    return config


@pytest.mark.parametrize("compute", ["localhost", "ibm_cf"])
def test_writes_are_retried_through_an_outage_longer_than_the_sdk_retries(
    request, localhost_config, cos_config, fault_proxy, compute: str
) -> None:
    server = request.getfixturevalue("openwhisk_server") if compute == "ibm_cf" else None
    config = proxied_cos(localhost_config, cos_config, fault_proxy, compute, server, write_retry_seconds=60)
    with pywren.FunctionExecutor(config=config) as executor:
        futures = executor.map(slow_square, [1, 2, 3])
        fault_proxy.fail_next(12, ("PUT",))  # 6 writes' worth of SDK attempts (max_attempts=2) fail
        assert executor.get_result(futures, timeout=300) == [1, 4, 9]
        assert fault_proxy.pending_failures == 0 and len(fault_proxy.injected) >= 12
        executor.clean()


@pytest.mark.parametrize("compute", ["localhost", "ibm_cf"])
def test_a_call_that_cannot_record_its_status_is_failed_with_the_storage_error(
    request, localhost_config, cos_config, fault_proxy, compute: str
) -> None:
    server = request.getfixturevalue("openwhisk_server") if compute == "ibm_cf" else None
    config = proxied_cos(localhost_config, cos_config, fault_proxy, compute, server, write_retry_seconds=1)
    with pywren.FunctionExecutor(config=config) as executor:
        future = executor.call_async(slow_square, 4)
        fault_proxy.fail_next(10**6, ("PUT",))  # storage refuses every write, for longer than the call retries
        deadline = time.monotonic() + 120
        while not future.done() and time.monotonic() < deadline:  # the client keeps polling, never hangs
            executor.wait([future], return_when=pywren.ALWAYS)
            if (
                compute == "localhost"
                and LocalhostCompute(executor.config).request(
                    {"op": "lost", "activation_ids": [future.activation_id]}, start=False
                )["lost"]
            ):
                break
            if (
                compute == "ibm_cf"
                and server.wait_idle(0.2)
                and server.activation(future.activation_id) is not None
                and server.activation(future.activation_id).summary().get("status") not in (None, "running")
            ):
                break
            time.sleep(0.2)
        fault_proxy.fail_next(0)  # storage is back
        with pytest.raises(
            ActivationLostError, match="could not write the .* of call 00000 .*write_retry_seconds"
        ) as info:
            executor.get_result(future, timeout=120)
        assert "SlowDown" in str(info.value) or "503" in str(info.value)
        assert executor.job_futures(future.job_id)[0].done()  # recorded in storage: every observer sees it failed
        executor.clean()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: a real 'No space left on device'."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp-" in p.name]


def test_a_full_disk_leaves_no_temp_file(tiny_disk: Path) -> None:
    storage = LocalhostStorage({"storage_dir": str(tiny_disk / "storage"), "bucket": "b", "storage_prefix": "p"})
    storage.check()
    with pytest.raises(StorageError, match="No space left on device"):
        storage.put("p/big", b"x" * (8 * 1024 * 1024))
    assert temp_files(tiny_disk) == []
    storage.put("p/small", b"fits")
    assert storage.get("p/small") == b"fits" and storage.list_keys("p/") == ["p/small"]


def test_a_result_too_big_for_the_disk_fails_its_call_and_leaves_no_temp_file(
    tiny_disk: Path, localhost_config
) -> None:
    config = merge_config(
        localhost_config,
        {"localhost": {"storage_dir": str(tiny_disk / "storage")}, "pywren": {"write_retry_seconds": 0.5}},
    )
    with pywren.FunctionExecutor(config=config) as executor:
        small, big = executor.map(big_value, [10, 8 * 1024 * 1024])
        with pytest.raises(ActivationLostError, match="No space left on device"):
            executor.get_result([small, big], timeout=120)
        assert small.result() == b"x" * 10
        assert temp_files(tiny_disk) == []
        executor.clean()


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with one file (removing it frees the disk again)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        block = b"\0" * 65536
        try:
            while True:
                out.write(block)
        except OSError:
            pass
        try:
            while True:
                out.write(b"\0")
        except OSError:
            pass
    return filler


def test_a_disk_full_for_a_moment_delays_the_results_and_loses_none(tiny_disk: Path, localhost_config) -> None:
    """Writes refused with ENOSPC while the calls end are retried (``write_retry_seconds``) once there is room."""
    config = merge_config(
        localhost_config,
        {"localhost": {"storage_dir": str(tiny_disk / "storage")}, "pywren": {"write_retry_seconds": 60}},
    )
    with pywren.FunctionExecutor(config=config) as executor:
        futures = executor.map(slow_square, [1, 2, 3, 4])
        filler = fill(tiny_disk)
        try:
            with pytest.raises(OSError, match="No space left on device"):
                (tiny_disk / "probe").write_bytes(b"x" * 8192)
            time.sleep(2)  # every call ends while the disk is full
        finally:
            filler.unlink()
        assert executor.get_result(futures, timeout=120) == [1, 4, 9, 16]
        assert temp_files(tiny_disk) == []
        executor.clean()
