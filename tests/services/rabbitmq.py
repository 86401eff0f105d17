"""A private RabbitMQ broker on 127.0.0.1 for the test session (pytest plugin).

The broker is Debian's ``rabbitmq-server``, installed by ``scripts/setup.sh --with-services``.
It runs from ``/usr/lib/rabbitmq/bin`` (the ``/usr/sbin`` wrapper would switch to the
``rabbitmq`` user), with free ports, a unique node name, its own ``epmd`` port and every
file under a temporary directory; no system service is involved. It starts once per
session (about 4 s) and is stopped, with its ``epmd``, at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services.processes import free_port

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def ensure_installed() -> None:
    """Fail with the fix when Debian's rabbitmq-server is missing (``scripts/setup.sh --with-services`` installs it)."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        pytest.fail(
            f"RabbitMQ is not installed ({RABBITMQ_BIN}/rabbitmq-server is missing): run "
            "'scripts/setup.sh --with-services' (or 'apt-get install -y rabbitmq-server') first"
        )


class RabbitMQBroker:
    """One private broker node; ``stop()`` and ``start()`` keep its ports and data."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.node_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.nodename = f"pywren-{uuid.uuid4().hex[:8]}@localhost"
        self.amqp_url = f"amqp://guest:guest@127.0.0.1:{self.node_port}/%2F"
        self.process: subprocess.Popen | None = None
        for name in ("home", "mnesia", "log"):
            (base_dir / name).mkdir(parents=True, exist_ok=True)
        (base_dir / "rabbitmq-env.conf").write_text("")
        (base_dir / "rabbitmq.conf").write_text("loopback_users = none\n")
        (base_dir / "advanced.config").write_text("[].\n")
        (base_dir / "enabled_plugins").write_text("[].\n")

    @property
    def env(self) -> dict[str, str]:
        d = self.base_dir
        return {
            **os.environ,
            "PATH": f"{RABBITMQ_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(d / "home"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.node_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
        }

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the node and wait until it accepts AMQP connections."""
        if self.running:
            return
        # clients find the node by its AMQP port, rabbitmqctl by epmd: the distribution port may change, and
        # must when restarting, since another process may have taken the last one while the node was down
        self.dist_port = free_port()
        log = open(self.base_dir / "log" / "server.out", "ab")
        self.process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self.env,
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if port_open(self.node_port):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        output = (self.base_dir / "log" / "server.out").read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"RabbitMQ did not start on port {self.node_port}:\n{output}")

    def stop(self) -> None:
        """Stop the node (``rabbitmqctl stop``; killed if it does not stop in time)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.ctl("stop", check=False, timeout=STOP_TIMEOUT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self.process = None
        deadline = time.monotonic() + 10
        while port_open(self.node_port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def ctl(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        """Run ``rabbitmqctl -n <node> args...`` against this node; return its output."""
        result = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.nodename, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def queue_names(self) -> list[str]:
        """Names of the queues of the default virtual host."""
        output = self.ctl("list_queues", "name", "--quiet", "--no-table-headers")
        return [line.strip() for line in output.splitlines() if line.strip()]

    def kill_epmd(self) -> None:
        epmd = shutil.which("epmd") or "/usr/bin/epmd"
        subprocess.run([epmd, "-port", str(self.epmd_port), "-kill"], env=self.env, capture_output=True, check=False)


@pytest.fixture(scope="session")
def rabbitmq_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQBroker]:
    """A private RabbitMQ broker for the whole session, stopped at the end."""
    ensure_installed()
    broker = RabbitMQBroker(tmp_path_factory.mktemp("rabbitmq"))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        broker.kill_epmd()


@pytest.fixture
def rabbitmq_config(rabbitmq_broker: RabbitMQBroker) -> dict[str, Any]:
    """Config sections enabling RabbitMQ monitoring on the session's broker (restarted if a test stopped it)."""
    rabbitmq_broker.start()
    return {"pywren": {"rabbitmq_monitor": True}, "rabbitmq": {"amqp_url": rabbitmq_broker.amqp_url}}
