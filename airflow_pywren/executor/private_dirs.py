"""Private directories: created 0700, owned by this user, never shared with other local users.

Shipped modules, the localhost runner's socket and the embedded storage live in such
directories, so that another user of the machine can neither plant code that a worker
imports nor squat on a path that receives an invocation payload (with its credentials).
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path

from airflow_pywren.executor.errors import PyWrenConfigError

logger = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a directory of this user with mode 0700, created (with missing parents) if needed.

    An existing directory that belongs to another user is refused with PyWrenConfigError;
    one of this user's with wider permissions is narrowed to 0700.
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE_DIR_MODE)
        except FileExistsError:
            pass
        except OSError as exc:
            raise PyWrenConfigError(f"cannot create {what} {directory}: {exc}") from exc
    try:
        info = os.stat(path)
    except OSError as exc:
        raise PyWrenConfigError(f"cannot use {what} {path}: {exc}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise PyWrenConfigError(f"{what} {path} is not a directory")
    if info.st_uid != os.geteuid():
        raise PyWrenConfigError(
            f"{what} {path} belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()}): another user may "
            "control what is in it; use a directory of your own"
        )
    if stat.S_IMODE(info.st_mode) != PRIVATE_DIR_MODE:
        os.chmod(path, PRIVATE_DIR_MODE)
    return path


_fallback_bases: list[Path] = []


def user_temp_dir(name: str) -> Path:
    """A private per-user directory under the system temp dir: ``$TMPDIR/pywren-{uid}/{name}``.

    When another user squats on ``pywren-{uid}``, an unpredictable private directory
    (``mkdtemp``) of this process is used instead: never the squatter's.
    """
    try:
        base = private_dir(Path(tempfile.gettempdir()) / f"pywren-{os.geteuid()}", "the per-user temp directory")
    except (PyWrenConfigError, PermissionError) as exc:
        if not _fallback_bases:
            logger.warning("%s; using a private temporary directory instead", exc)
            _fallback_bases.append(Path(tempfile.mkdtemp(prefix=f"pywren-{os.geteuid()}-")))
        base = _fallback_bases[0]
    return private_dir(base / name, f"the per-user directory {name!r}")
