"""Exceptions raised by the PyWren executor."""

from __future__ import annotations


class PyWrenError(Exception):
    """Base class of every error the executor raises itself."""


class PyWrenConfigError(PyWrenError, ValueError):
    """The configuration is invalid: the message names the key and the fix."""


class PyWrenSubmitError(PyWrenError, ValueError):
    """A function or data item cannot be submitted; nothing was invoked."""


class InvalidIdError(PyWrenError, ValueError):
    """An executor, job or call id is not well-formed (it would address other data in storage)."""


class StorageKeyNotFound(PyWrenError, KeyError):
    """An object does not exist in storage."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "key not found"


class StorageError(PyWrenError):
    """Storage cannot be reached, or refused a request."""


class StorageBucketNotFound(StorageError):
    """A bucket named by the data of a job does not exist."""


class DataSourceError(PyWrenSubmitError):
    """Data named in ``iterdata`` cannot be found or planned: the message names the location and the fix."""


class DataChangedError(PyWrenError):
    """An object changed (ETag or size) between planning a job and reading one of its chunks."""


class ComputeError(PyWrenError):
    """The compute backend refused or failed an invocation."""


class ActivationTimeoutError(PyWrenError, TimeoutError):
    """A call ran longer than its timeout and was stopped."""


class ActivationMemoryError(PyWrenError, MemoryError):
    """A call exceeded its runtime_memory and was stopped."""


class ActivationLostError(PyWrenError):
    """A call started but its activation vanished without writing a final status."""


class CallNeverInvokedError(ActivationLostError):
    """The process invoking a job's calls stopped before it invoked this one (see ``invoke_missing``)."""


class UnpicklableResultError(PyWrenError, TypeError):
    """A call's return value cannot be pickled: the message names the call."""


class CallCancelledError(PyWrenError):
    """A call was stopped by ``cancel()`` before it finished."""


class FunctionError(PyWrenError):
    """A remote call failed with an exception that cannot be re-created locally."""

    def __init__(self, exc_type: str, message: str, traceback_text: str = "") -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.message = message
        self.traceback_text = traceback_text


class RemoteTraceback(Exception):
    """Carries the traceback of a remote call; chained as ``__cause__`` of the re-raised error."""

    def __init__(self, traceback_text: str) -> None:
        super().__init__(traceback_text)
        self.traceback_text = traceback_text

    def __str__(self) -> str:
        return f'\n"""\nRemote traceback:\n{self.traceback_text}"""'


class FunctionExitError(PyWrenError):
    """A call's function called ``sys.exit()`` (or was interrupted) instead of returning."""
