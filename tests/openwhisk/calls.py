"""Functions the lost-activation tests run as OpenWhisk calls (some exit or get killed on purpose)."""

from __future__ import annotations

import os
import time

LONG = 600
"""Seconds: the calls' timeout, far beyond the tests' pytest timeout, so a loss noticed only
after timeout plus ``pywren.lost_call_grace`` (or never) fails the test."""


def tenfold_but_three_exits(x):
    if x == 3:
        os._exit(3)
    return 10 * x


def nap_and_double(x):
    time.sleep(0.2)
    return 2 * x


def double(x):
    return 2 * x
