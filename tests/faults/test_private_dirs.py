"""Private directories and permissions: nothing another local user could plant code in or listen on."""

from __future__ import annotations

import os
import socket
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor import private_dirs
from airflow_pywren.executor.compute.localhost import LocalhostCompute, stop_runners
from airflow_pywren.executor.errors import ComputeError, PyWrenConfigError
from tests.conftest import merge_config

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def own_runner(tmp_path: Path, localhost_config: dict[str, Any]):
    """A config with its own storage and runner directories (a runner of its own, stopped after)."""
    config = merge_config(
        localhost_config,
        {"localhost": {"storage_dir": str(tmp_path / "storage"), "runner_dir": str(tmp_path / "runner"), "workers": 1}},
    )
    yield config
    stop_runners(tmp_path / "runner")


def test_shipped_modules_are_extracted_into_a_private_directory(pw, tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "fault_suite_shipped.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(source))
    import fault_suite_shipped as shipped  # a local module: shipped with the function

    def uses_module(x):
        return shipped.__file__, shipped.double(x)

    path, value = pw.get_result(pw.call_async(uses_module, 21))
    assert value == 42
    extracted = Path(path)
    assert extracted.parent != source and not str(extracted).startswith(str(source))
    modules_root = extracted.parent.parent
    user_dir = modules_root.parent
    assert user_dir.name == f"pywren-{os.geteuid()}" and modules_root.name == "modules"
    for directory in (user_dir, modules_root):
        assert mode(directory) == 0o700 and directory.stat().st_uid == os.geteuid()


def test_a_squatted_per_user_temp_dir_is_never_used(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(private_dirs, "_fallback_bases", [])
    squatted = tmp_path / f"pywren-{os.geteuid()}"
    squatted.mkdir()
    os.chown(squatted, NOBODY, NOBODY)
    chosen = private_dirs.user_temp_dir("modules")
    assert squatted not in chosen.parents
    assert mode(chosen) == 0o700 and mode(chosen.parent) == 0o700
    assert chosen.parent.stat().st_uid == os.geteuid()
    with pytest.raises(PyWrenConfigError, match=f"belongs to uid {NOBODY}, not to this user"):
        private_dirs.private_dir(squatted, "the directory")


def test_long_runner_dir_socket_is_not_in_a_shared_directory(own_runner, tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    config = merge_config(own_runner, {"localhost": {"runner_dir": str(deep)}})
    try:
        with pywren.FunctionExecutor(config=config) as executor:
            assert executor.get_result(executor.call_async(abs, -3)) == 3
            socket_path = Path(LocalhostCompute(executor.config).socket_path)
            executor.clean()
        assert socket_path.parent != Path("/tmp") and socket_path.parent != Path(tempfile.gettempdir())
        assert mode(socket_path.parent) == 0o700 and socket_path.parent.stat().st_uid == os.geteuid()
        assert mode(socket_path) == 0o600
    finally:
        stop_runners(deep)


def _squat(path: str, received: list[bytes], ready: threading.Event) -> None:
    """Listen on ``path`` as another user (nobody) and record what clients send."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            os.chmod(path, 0o777)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            listener.listen(8)  # the peer credentials clients see are those of listen()
            os.write(write_end, b"R")
            listener.settimeout(20)
            conn, _ = listener.accept()
            conn.settimeout(3)
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            os.write(write_end, b"D" + data)
        finally:
            os._exit(0)
    os.close(write_end)

    def collect() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            first = pipe.read(1)
            if first == b"R":
                ready.set()
            rest = pipe.read()
            received.append(rest[1:] if rest.startswith(b"D") else rest)
        os.waitpid(pid, 0)

    threading.Thread(target=collect, daemon=True).start()


@pytest.mark.skipif(os.geteuid() != 0, reason="impersonating another user needs root")
def test_client_refuses_a_runner_socket_of_another_user(own_runner, tmp_path: Path) -> None:
    compute = LocalhostCompute(pywren.FunctionExecutor(config=own_runner).config)
    compute.check()
    os.chmod(compute.runner_dir, 0o755)  # let the squatter's listen() happen; the client checks the peer anyway
    received: list[bytes] = []
    ready = threading.Event()
    _squat(compute.socket_path, received, ready)
    assert ready.wait(20)
    with pytest.raises(ComputeError, match=f"served by process .* of uid {NOBODY}, not by this user"):
        compute.request(
            {"op": "invoke", "job": {"storage": {"settings": {"secret_access_key": "s3cr3t"}}}, "calls": []}
        )
    for _ in range(100):
        if received:
            break
        threading.Event().wait(0.05)
    assert received == [b""]  # connected, but the client sent nothing


def writes_files(x):
    return x


def test_storage_and_runner_files_are_private_whatever_the_umask(own_runner, tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        with pywren.FunctionExecutor(config=own_runner) as executor:  # its runner starts with umask 0 too
            assert executor.get_result(executor.map(writes_files, [1, 2])) == [1, 2]
            assert isinstance(executor.call_async(int, "x").exception(), ValueError)
    finally:
        os.umask(previous)
    checked = 0
    for top in (tmp_path / "storage", tmp_path / "runner"):
        for path in [top, *top.rglob("*")]:
            if path.is_symlink():
                continue
            if path.is_dir():
                assert mode(path) == 0o700, path
            elif path.is_socket():
                assert mode(path) & 0o077 == 0, path
            else:
                assert mode(path) == 0o600, path
            checked += 1
    assert checked > 15


def test_storage_dir_of_another_user_is_refused(localhost_config, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, NOBODY, NOBODY)
    config = merge_config(localhost_config, {"localhost": {"storage_dir": str(foreign)}})
    with pytest.raises(pywren.PyWrenError, match=f"belongs to uid {NOBODY}"):
        pywren.FunctionExecutor(config=config)
