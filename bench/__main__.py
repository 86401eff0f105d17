"""``python -m bench``: run the benchmark sections and write ``bench/results/report.md``.

Options: ``--only executor,latency`` runs a subset (the report keeps the other sections'
last results), ``--list`` names the sections, ``--quick`` shrinks every section for a smoke run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import logging
import os
import signal
import sys
import time
import traceback

from bench.common import RESULTS_DIR, Context, bench_paths, cleanup_homes
from bench.report import machine, save_section, write_report
from bench.services import Services

SECTIONS = [
    ("executor", "bench.executor_localhost"),
    ("dag", "bench.dag_level"),
    ("latency", "bench.latency"),
    ("requests", "bench.storage_requests"),
    ("throughput", "bench.invocation"),
    ("deferrable", "bench.deferrable"),
    ("batch", "bench.batch_backends"),
    ("data", "bench.data_maps"),
]

logger = logging.getLogger("bench")


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _leftovers(paths: list[str]) -> list[int]:
    """Stop processes this run started that are still alive (found by this run's temp dirs); their pids."""
    import psutil

    found = []
    me = os.getpid()
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info.get("cmdline") or [])
        if process.info["pid"] != me and any(path in cmdline for path in paths):
            found.append(process.info["pid"])
            try:
                process.kill()
            except psutil.Error:
                pass
    return found


def main(argv: list[str] | None = None) -> int:
    names = [name for name, _ in SECTIONS]
    parser = argparse.ArgumentParser(prog="python -m bench", description="airflow-pywren benchmarks")
    parser.add_argument("--only", default="", help=f"comma-separated sections to run ({', '.join(names)})")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run, not for the report")
    args = parser.parse_args(argv)
    if args.list:
        for name, module in SECTIONS:
            print(f"{name:12} {importlib.import_module(module).TITLE}")
        return 0
    wanted = [n.strip() for n in args.only.split(",") if n.strip()] or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("airflow_pywren", "pika", "ibm_botocore", "ibm_boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _terminate)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    services = Services()
    ctx = Context(results_dir=RESULTS_DIR, services=services, quick=args.quick)
    failed = 0
    started = time.perf_counter()
    try:
        for name, module_name in SECTIONS:
            if name not in wanted:
                continue
            module = importlib.import_module(module_name)
            logger.info("section %s: %s", name, module.TITLE)
            section_start = time.perf_counter()
            try:
                result = module.run(ctx)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                failed += 1
                logger.error("section %s failed:\n%s", name, traceback.format_exc())
                result = {"title": module.TITLE, "error": f"{type(exc).__name__}: {exc}", "plots": []}
            result.update(
                elapsed_s=time.perf_counter() - section_start,
                machine=machine(),
                quick=args.quick,
                finished=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            )
            save_section(name, result)
            logger.info("section %s done in %.0f s", name, result["elapsed_s"])
            if result.get("table"):
                print(f"\n## {result['title']}\n\n{result['table']}\n", flush=True)
    except KeyboardInterrupt:
        logger.warning("interrupted: stopping the servers and runners")
        failed += 1
    finally:
        paths = [str(services.workdir), *bench_paths()]
        services.close()
        cleanup_homes()
        left = _leftovers(paths)
        if left:
            logger.warning("stopped %d leftover process(es): %s", len(left), left)
    path = write_report([(name, importlib.import_module(module).TITLE) for name, module in SECTIONS])
    logger.info("all done in %.0f s; report: %s", time.perf_counter() - started, path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
