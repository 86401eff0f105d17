"""The environment a call runs in: a documented allow-list of the host's variables, plus ``extra_env``.

Nothing else of the submitting process reaches a call: not its ``AIRFLOW_CONN_*``, not
``PYWREN_CONFIG``, not cloud credentials in the environment. The localhost runner is started
with this environment (it outlives its submitter and serves later jobs), and every call,
on localhost as on OpenWhisk, runs with exactly ``allowed(host) + extra_env``; whatever a
function changes in ``os.environ`` is undone when it returns, so a warm worker's next call
starts clean.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

ALLOWED_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "TMPDIR",
        "TEMP",
        "TMP",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONHASHSEED",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONIOENCODING",
        "PYTHONUTF8",
        "VIRTUAL_ENV",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE",
        # OpenWhisk's activation context (the namespace key, __OW_API_KEY, is not passed on)
        "__OW_ACTIVATION_ID",
        "__OW_ACTION_NAME",
        "__OW_NAMESPACE",
        "__OW_DEADLINE",
        "__OW_TRANSACTION_ID",
        "__OW_API_HOST",
    }
)
"""Variables of the host (runner or action container) that calls see; everything else needs ``extra_env``."""
ALLOWED_PREFIXES = ("LC_",)


def allowed(name: str) -> bool:
    return name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)


def clean_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allowed variables of ``environ`` (default: this process's)."""
    environ = os.environ if environ is None else environ
    return {name: value for name, value in environ.items() if allowed(name)}


@contextmanager
def call_environment(extra_env: Mapping[str, str] | None) -> Iterator[None]:
    """Run the body with only the allowed variables plus ``extra_env``; restore the whole environment after."""
    saved = dict(os.environ)
    wanted = clean_environment(saved)
    wanted.update({name: str(value) for name, value in (extra_env or {}).items()})
    _become(saved, wanted)
    try:
        yield
    finally:
        _become(dict(os.environ), saved)


def _become(current: Mapping[str, str], wanted: Mapping[str, str]) -> None:
    """Change ``os.environ`` from ``current`` to ``wanted``, setting only what differs (a warm worker: nothing)."""
    for name in current.keys() - wanted.keys():
        del os.environ[name]
    for name, value in wanted.items():
        if current.get(name) != value:
            os.environ[name] = value
