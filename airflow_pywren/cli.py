"""The ``pywren`` command: build and deploy the runtime, clean storage, run a hello world.

::

    pywren runtime build [--tag IMAGE] [--python 3.11] [--push] [--dry-run]
    pywren runtime deploy [--memory MB ...] [--runtime IMAGE]
    pywren runtime list
    pywren runtime delete [--memory MB] [--runtime IMAGE] [--all]
    pywren clean [--executor-id ID]
    pywren test

The configuration comes from the usual layers (``~/.pywren_config``, ``PYWREN_CONFIG_FILE``
or ``--config``, ``PYWREN_CONFIG``). ``runtime`` commands use the ``ibm_cf`` section unless
``pywren.compute_backend`` is ``k8s`` or ``code_engine``: these need no deployed action (pods and
job runs pull the image when a job starts), so ``runtime deploy`` runs one call with the image
there, which checks the image can be pulled, runs the handler and reaches the storage.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cloudpickle

from airflow_pywren import runtime
from airflow_pywren.executor import versions
from airflow_pywren.executor.config import Config, load_config, schema, storage_section
from airflow_pywren.executor.errors import PyWrenError


def hello(name: str) -> str:
    """The function ``pywren test`` runs remotely."""
    return f"Hello {name}!"


def _ibm_cf_config() -> Config:
    return load_config({"pywren": {"compute_backend": "ibm_cf"}})


def _compute(config: Config | None = None) -> Any:
    from airflow_pywren.executor.compute.ibm_cf import OpenWhiskCompute

    return OpenWhiskCompute(config or _ibm_cf_config())


BATCH_BACKENDS = ("k8s", "code_engine")


def _batch_backend() -> str | None:
    """``k8s`` or ``code_engine`` when that is the configured compute backend (even if its section is incomplete:
    the command then fails naming what that backend lacks, not what ``ibm_cf`` would)."""
    try:
        backend = load_config(complete=False)["pywren"]["compute_backend"]
    except PyWrenError:
        return None
    return backend if backend in BATCH_BACKENDS else None


def _configured_runtime() -> str:
    try:
        config = load_config(complete=False)  # building an image needs no credentials
        section = (
            config["pywren"]["compute_backend"] if config["pywren"]["compute_backend"] in BATCH_BACKENDS else "ibm_cf"
        )
        return config["pywren"]["runtime"] or config[section]["runtime"]
    except PyWrenError:
        return schema()["ibm_cf"]["runtime"].default


# ------------------------------------------------------------------ runtime
def runtime_build(args: argparse.Namespace) -> int:
    """``docker build`` the runtime image from this installation (and push it) for this client's versions."""
    tag = args.tag or _configured_runtime()
    with contextlib.ExitStack() as cleanup:
        if args.context:
            context = Path(args.context).resolve()
        else:
            context = Path(tempfile.mkdtemp(prefix="pywren-runtime-"))
            if not args.dry_run:
                cleanup.callback(shutil.rmtree, context, ignore_errors=True)
            runtime.make_build_context(context)
        dockerfile = context / runtime.DOCKERFILE_IN_CONTEXT
        if not dockerfile.is_file():
            raise PyWrenError(
                f"{dockerfile} not found: --context must be a source checkout of airflow-pywren "
                "(a directory holding airflow_pywren/); leave it out to build from this installation"
            )
        commands = [runtime.build_command(context, tag, args.python, args.cloudpickle)]
        if args.push:
            commands.append(["docker", "push", tag])
        for command in commands:
            print("$ " + " ".join(command), flush=True)
            if args.dry_run:
                continue
            if shutil.which("docker") is None:
                raise PyWrenError("the 'docker' command is not on PATH; install the Docker client to build the runtime")
            completed = subprocess.run(command, check=False)
            if completed.returncode != 0:
                raise PyWrenError(f"'{' '.join(command[:2])}' failed with exit code {completed.returncode}")
    if args.dry_run:
        if not args.context:
            print(f"# the build context {context} is kept for these commands", flush=True)
    else:
        print(f"built {tag}" + (" and pushed it" if args.push else ""))
    return 0


def runtime_deploy(args: argparse.Namespace) -> int:
    backend = _batch_backend()
    if backend is not None:
        return _batch_deploy(backend, args)
    compute = _compute()
    try:
        compute.check()
        for memory in args.memory or [compute.settings["runtime_memory"]]:
            name = compute.deploy(memory, args.runtime)
            print(f"deployed {name}  image={args.runtime or compute.runtime}  memory={memory}MB")
    finally:
        compute.close()
    return 0


def _batch_deploy(backend: str, args: argparse.Namespace) -> int:
    """Run one call with the image on k8s or code_engine: the image pulls, runs the handler and reaches storage."""
    from airflow_pywren.executor.executor import FunctionExecutor

    for memory in args.memory or [None]:
        started = time.monotonic()
        with FunctionExecutor(runtime=args.runtime, runtime_memory=memory) as executor:
            try:
                future = executor.call_async(hello, "runtime", runtime_memory=memory)
                result = executor.get_result(future, timeout=600)
            finally:
                executor.clean()
            image = getattr(executor.compute, "runtime", args.runtime)
            memory = memory or executor.config["pywren"]["runtime_memory"]
        print(
            f"{backend}: {result} image={image} memory={memory}MB activation={future.activation_id} "
            f"in {time.monotonic() - started:.1f} s (nothing to deploy: the image is pulled when a job starts)"
        )
    return 0


def runtime_list(args: argparse.Namespace) -> int:
    backend = _batch_backend()
    if backend is not None:
        print(f"{backend} keeps no deployed runtimes: jobs run the image {_configured_runtime()} directly")
        return 0
    compute = _compute()
    try:
        compute.check()
        actions = compute.list_runtimes()
    finally:
        compute.close()
    if not actions:
        print(f"no actions with prefix '{compute.prefix}_' in namespace {compute.client.namespace}")
        return 0
    width = max(len(a["name"]) for a in actions)
    print(f"{'ACTION':<{width}}  {'MEMORY':>7}  IMAGE")
    for action in actions:
        print(f"{action['name']:<{width}}  {str(action['memory']) + 'MB':>7}  {action['image']}")
    return 0


def runtime_delete(args: argparse.Namespace) -> int:
    backend = _batch_backend()
    if backend is not None:
        print(f"{backend} keeps no deployed runtimes: nothing to delete ('pywren clean' removes finished jobs)")
        return 0
    compute = _compute()
    try:
        compute.check()
        runtime = args.runtime or compute.runtime
        if args.memory:
            names = [compute.action_name(args.memory, runtime)]
        else:
            names = [a["name"] for a in compute.list_runtimes() if args.all or a["image"] == runtime]
        deleted = [name for name in names if compute.delete(name)]
    finally:
        compute.close()
    for name in deleted:
        print(f"deleted {name}")
    if not deleted:
        print("no action to delete")
    return 0


# ------------------------------------------------------------------ clean and test
def clean(args: argparse.Namespace) -> int:
    from airflow_pywren.executor import keys, validation
    from airflow_pywren.executor.storage import create_storage

    if args.executor_id is not None:
        validation.check_executor_id(args.executor_id, "--executor-id")
    config = load_config()
    storage = create_storage(config["pywren"]["storage_backend"], storage_section(config))
    try:
        storage.check()
        prefix = keys.executor_prefix(storage.prefix, args.executor_id) if args.executor_id else storage.prefix + "/"
        removed = storage.delete_prefix(prefix)
    finally:
        storage.close()
    what = f"executor {args.executor_id}" if args.executor_id else "every executor"
    print(f"removed {removed} object(s) of {what} from {storage.location()}")
    return 0


def test(args: argparse.Namespace) -> int:
    from airflow_pywren.executor.executor import FunctionExecutor

    started = time.monotonic()
    with FunctionExecutor(runtime_memory=args.memory) as executor:
        try:
            future = executor.call_async(hello, "World", runtime_memory=args.memory)
            result = executor.get_result(future, timeout=args.timeout)
        finally:
            executor.clean()
        pw = executor.config["pywren"]
    print(result)
    print(
        f"compute={pw['compute_backend']} storage={pw['storage_backend']} "
        f"activation={future.activation_id} in {time.monotonic() - started:.1f} s"
    )
    return 0


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pywren", description="airflow-pywren: runtime, storage and smoke test")
    parser.add_argument("--config", help="config file (default: PYWREN_CONFIG_FILE or ~/.pywren_config)")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logging level (default WARNING)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    runtime = commands.add_parser(
        "runtime",
        help="build the runtime image; deploy, list and delete it (OpenWhisk actions; "
        "on k8s and code_engine deploy runs one call with it)",
    )
    runtime_commands = runtime.add_subparsers(dest="runtime_command", required=True)
    build = runtime_commands.add_parser(
        "build", help="docker build the runtime image from this installation (and push)"
    )
    build.add_argument("--tag", help="image name (default: the configured runtime of the compute backend)")
    build.add_argument(
        "--python",
        default=versions.python_version(),
        help="Python minor version of the image; must be the clients' (default: this one's)",
    )
    build.add_argument(
        "--cloudpickle",
        default=cloudpickle.__version__,
        help="cloudpickle version of the image; must match the clients' (default: this one's)",
    )
    build.add_argument("--context", help="a source checkout to build from (default: a copy of this installation)")
    build.add_argument("--push", action="store_true", help="docker push the image after building it")
    build.add_argument("--dry-run", action="store_true", help="print the docker commands only")
    build.set_defaults(handler=runtime_build)
    deploy = runtime_commands.add_parser("deploy", help="create or update the action for the runtime")
    deploy.add_argument("--memory", type=int, nargs="+", help="memory sizes in MB (default: ibm_cf.runtime_memory)")
    deploy.add_argument("--runtime", help="image (default: the configured runtime)")
    deploy.set_defaults(handler=runtime_deploy)
    listing = runtime_commands.add_parser("list", help="list the deployed actions")
    listing.set_defaults(handler=runtime_list)
    delete = runtime_commands.add_parser("delete", help="delete the actions of the runtime")
    delete.add_argument("--memory", type=int, help="only the action of this memory size")
    delete.add_argument("--runtime", help="image (default: the configured runtime)")
    delete.add_argument("--all", action="store_true", help="every action of the prefix, whatever its image")
    delete.set_defaults(handler=runtime_delete)

    cleaner = commands.add_parser("clean", help="delete job data from storage")
    cleaner.add_argument("--executor-id", help="only this executor's data (default: all of the storage prefix)")
    cleaner.set_defaults(handler=clean)

    tester = commands.add_parser("test", help="run a hello world on the configured backends")
    tester.add_argument("--memory", type=int, default=256, help="runtime memory in MB")
    tester.add_argument("--timeout", type=float, default=300, help="seconds to wait for the result")
    tester.set_defaults(handler=test)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    if args.config:
        os.environ["PYWREN_CONFIG_FILE"] = args.config
    try:
        return args.handler(args)
    except (PyWrenError, TimeoutError) as exc:
        print(f"pywren: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
