"""HMAC signatures of the pickles that cross storage, so that no code from storage runs unless it was signed.

Every pickle written to storage (the function, each call's data, each output or
exception) is ``MAGIC + key fingerprint + HMAC-SHA256 + pickle``; a reader verifies the
signature before it unpickles anything. The key comes from ``pywren.signing_key`` (the
connection's ``signing_key`` field in Airflow) or, when that is unset, from a per-user key
file (``pywren.signing_key_file``, default ``~/.pywren/signing.key``) created with mode 0600
on first use. Keys in ``pywren.previous_signing_keys`` are accepted when verifying, never
used to sign: that is how a key is rotated without making stored results unreadable.

The key travels to the function side in each activation's payload (like the storage
credentials), so that calls can verify their function and data and sign their outputs.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_pywren.executor.errors import PyWrenConfigError, PyWrenError

MAGIC = b"PWS1"
_FINGERPRINT_SIZE = 8
_DIGEST_SIZE = hashlib.sha256().digest_size
HEADER_SIZE = len(MAGIC) + _FINGERPRINT_SIZE + _DIGEST_SIZE
MIN_KEY_LENGTH = 16


class SignatureError(PyWrenError):
    """A stored pickle is unsigned, tampered with, or signed with a key this process does not accept."""


def fingerprint(key: bytes) -> bytes:
    """The first bytes of the key's SHA-256: names a key in objects and messages without revealing it."""
    return hashlib.sha256(b"pywren-signing-key\0" + key).digest()[:_FINGERPRINT_SIZE]


@dataclass(frozen=True)
class Signer:
    """Signs with ``key``; verifies with ``key`` or any of ``previous``. ``source`` says where the key came from."""

    key: bytes
    previous: tuple[bytes, ...] = ()
    source: str = "pywren.signing_key"
    _by_fingerprint: dict[bytes, bytes] = field(default_factory=dict, compare=False, repr=False)
    _mark: bytes = field(default=b"", init=False, compare=False, repr=False)
    _keyed: Any = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        mark = fingerprint(self.key)
        object.__setattr__(self, "_mark", mark)
        keyed = hmac.new(self.key, digestmod=hashlib.sha256)
        keyed.update(mark)
        object.__setattr__(self, "_keyed", keyed)  # copied per signature: the key is set up once
        for key in (self.key, *self.previous):
            self._by_fingerprint.setdefault(fingerprint(key), key)

    @property
    def key_id(self) -> str:
        return self._mark.hex()

    def describe(self) -> str:
        """The key as messages name it: where it comes from and its fingerprint (never the key)."""
        return f"the signing key {self.source} (fingerprint {self.key_id})"

    def sign(self, data: bytes) -> bytes:
        signature = self._keyed.copy()
        signature.update(data)
        return b"".join((MAGIC, self._mark, signature.digest(), data))

    def verify(self, blob: bytes, what: str) -> bytes:
        """The pickle inside ``blob`` once its signature checks out; SignatureError otherwise."""
        if len(blob) < HEADER_SIZE or not blob.startswith(MAGIC):
            raise SignatureError(
                f"{what} is not signed, so it is not unpickled: objects in storage must be signed with "
                f"{self.describe()}; it was written by another program or tampered with"
            )
        mark = blob[len(MAGIC) : len(MAGIC) + _FINGERPRINT_SIZE]
        digest = blob[len(MAGIC) + _FINGERPRINT_SIZE : HEADER_SIZE]
        data = blob[HEADER_SIZE:]
        key = self._by_fingerprint.get(mark)
        if key is None:
            raise SignatureError(
                f"{what} is signed with another key (fingerprint {mark.hex()}), not with {self.describe()} or a "
                "key in pywren.previous_signing_keys; add the key that wrote it to pywren.previous_signing_keys "
                "to read it"
            )
        if not hmac.compare_digest(digest, hmac.digest(key, mark + data, "sha256")):
            raise SignatureError(
                f"{what} fails its signature check with {self.describe()}: it was changed after it was "
                "written (tampered with or corrupted), so it is not unpickled"
            )
        return data

    def payload(self) -> dict[str, Any]:
        """What travels to the function side (the keys, hex-encoded)."""
        return {"key": self.key.hex(), "previous": [k.hex() for k in self.previous], "source": self.source}

    @classmethod
    def from_payload(cls, settings: dict[str, Any]) -> Signer:
        return _signer_of(settings["key"], tuple(settings.get("previous") or ()), settings.get("source") or "")


@functools.lru_cache(maxsize=16)
def _signer_of(key: str, previous: tuple[str, ...], source: str) -> Signer:
    """The signer of an activation's payload (the same for every call of a job: built once per warm process)."""
    return Signer(bytes.fromhex(key), tuple(bytes.fromhex(k) for k in previous), source or "pywren.signing_key")


def _key_bytes(value: str, setting: str) -> bytes:
    if not isinstance(value, str) or len(value.strip()) < MIN_KEY_LENGTH:
        raise PyWrenConfigError(
            f"'{setting}' must be a string of at least {MIN_KEY_LENGTH} characters; generate one with "
            "python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return value.strip().encode()


def signer_from_config(config: dict[str, dict[str, Any]]) -> Signer:
    """The signer of a configuration: ``pywren.signing_key``, else the per-user key file."""
    pw = config["pywren"]
    previous = tuple(_key_bytes(k, "pywren.previous_signing_keys") for k in pw.get("previous_signing_keys") or ())
    if pw.get("signing_key"):
        return Signer(_key_bytes(pw["signing_key"], "pywren.signing_key"), previous, "pywren.signing_key")
    path = Path(os.path.expanduser(pw["signing_key_file"]))
    return Signer(load_key_file(path), previous, f"in the key file {path}")


def load_key_file(path: Path) -> bytes:
    """The key in ``path``, created (mode 0600, its directory 0700) when missing; it must be this user's and private."""
    from airflow_pywren.executor.private_dirs import private_dir

    private_dir(path.parent, "the directory of pywren.signing_key_file")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise PyWrenConfigError(
            f"cannot read the signing key file {path}: {exc}; fix it or set pywren.signing_key"
        ) from exc
    with os.fdopen(fd) as file:
        info = os.fstat(file.fileno())
        if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
            raise PyWrenConfigError(
                f"the signing key file {path} must belong to this user (uid {os.geteuid()}) with mode 0600, but has "
                f"owner {info.st_uid} and mode {stat.S_IMODE(info.st_mode):04o}; fix it (chmod 600) or delete it"
            )
        text = file.read().strip()
    return _key_bytes(text, f"the signing key file {path}")
