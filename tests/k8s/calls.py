"""Functions the Kubernetes tests run in pods (some exit, overrun or exhaust memory on purpose)."""

from __future__ import annotations

import os
import time


def square(x):
    return x * x


def exits_at_four(x):
    if x == 4:
        os._exit(0)
    return x


def crashes_at_four(x):
    if x == 4:
        os._exit(3)
    return x


def hog_at_four(x):
    if x == 4:
        hog = "x" * (600 << 20)
        return len(hog)
    return x


def ignores_its_timeout(x):
    if x == 4:
        for _ in range(120):
            try:
                time.sleep(1)
            except BaseException:
                pass
    return x


def sleeps(x):
    time.sleep(x)
    return x
