"""A fresh client process for section 1: map a no-op over N items; print peak RSS and submit time as JSON.

``python -m bench.executor_client '<config json>' N``
"""

from __future__ import annotations

import json
import resource
import sys
import time

import airflow_pywren as pywren
from bench.common import noop


def main(config: dict, n: int) -> dict[str, float]:
    executor = pywren.FunctionExecutor(config=config)
    executor.get_result(executor.map(noop, range(2)))  # the runner is warm, as in section 1
    start = time.perf_counter()
    futures = executor.map(noop, range(n))
    submit = time.perf_counter() - start
    results = executor.get_result(futures)
    assert results[-1] == n
    elapsed = time.perf_counter() - start
    executor.clean()
    return {"peak_rss_mib": peak_rss_mib(), "submit_s": submit, "client_elapsed_s": elapsed}


def peak_rss_mib() -> float:
    """This process's peak resident memory (``VmHWM``): unlike ``ru_maxrss``, it does not start at the size
    of the parent that forked it (Linux carries ``ru_maxrss`` across fork and exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]), int(sys.argv[2]))))
