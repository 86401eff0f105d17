"""Wait modes, as in ``concurrent.futures.wait`` plus PyWren's ``ALWAYS`` (check once)."""

from __future__ import annotations

ALL_COMPLETED = "ALL_COMPLETED"
ANY_COMPLETED = "ANY_COMPLETED"
ALWAYS = "ALWAYS"
WAIT_MODES = (ALL_COMPLETED, ANY_COMPLETED, ALWAYS)
