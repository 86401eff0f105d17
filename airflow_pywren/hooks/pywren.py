"""PyWrenHook: builds PyWren executors from an Airflow connection and reads jobs by reference."""

from __future__ import annotations

import asyncio
import copy
import logging
import uuid
from typing import Any

from airflow_pywren.compat import AirflowNotFoundException, BaseHook, mask_secret
from airflow_pywren.executor.config import load_config
from airflow_pywren.executor.errors import PyWrenConfigError
from airflow_pywren.executor.executor import FunctionExecutor
from airflow_pywren.executor.jobref import REQUIRED_KEYS, JobRef, JobRefError
from airflow_pywren.executor.jobs import JobWatcher
from airflow_pywren.hooks import connection as conn_layout


class PyWrenHook(BaseHook):
    """Interact with PyWren: the ``pywren`` connection holds the executor configuration.

    The connection (type ``pywren``) is read as follows, later rows winning:

    * no connection with that id: the embedded default (calls and storage on this
      machine, plus ``~/.pywren_config`` / ``PYWREN_CONFIG`` if set); the log says so;
    * ``extra["config"]``: an object of executor config sections merged section by
      section over the default, e.g. ``{"pywren": {"storage_backend": "ibm_cos"},
      "ibm_cos": {"endpoint": "...", "bucket": "..."}}``;
    * form fields stored in ``extra``: ``compute_backend``, ``storage_backend``, ``runtime``,
      ``rabbitmq_monitor``, ``cos_endpoint``, ``cos_bucket``, ``cos_region``,
      ``cos_access_key_id``, ``cos_secret_access_key``, ``cos_api_key``, ``cf_iam_api_key``,
      ``amqp_url``;
    * ``host`` -> ``ibm_cf.endpoint``, ``login`` -> ``ibm_cf.namespace``,
      ``password`` -> ``ibm_cf.api_key`` (the OpenWhisk ``uuid:key``).

    Keep secrets in the password or in the sensitive fields (``cos_secret_access_key``,
    ``cos_api_key``, ``cf_iam_api_key``, ``amqp_url``); every secret value, wherever it is
    set, is registered with Airflow's secrets masker when the connection is read.

    Example (environment variable)::

        AIRFLOW_CONN_PYWREN_DEFAULT='{"conn_type": "pywren", "host": "us-south.functions.cloud.ibm.com",
          "login": "my_namespace", "password": "uuid:key",
          "extra": {"compute_backend": "ibm_cf", "storage_backend": "ibm_cos",
                    "cos_endpoint": "https://s3.us-south.cloud-object-storage.appdomain.cloud",
                    "cos_bucket": "my-bucket", "cos_api_key": "..."}}'

    :param pywren_conn_id: the connection id.
    """

    conn_name_attr = "pywren_conn_id"
    default_conn_name = "pywren_default"
    conn_type = conn_layout.CONN_TYPE
    hook_name = "PyWren"

    def __init__(self, pywren_conn_id: str = default_conn_name, resumed: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pywren_conn_id = pywren_conn_id
        self.resumed = resumed
        """The try already said which configuration it uses (a trigger, a resumed deferred task): say it at DEBUG."""
        self._config: dict[str, dict[str, Any]] | None = None

    # ------------------------------------------------------------ config
    def get_config(self) -> dict[str, dict[str, Any]]:
        """Executor config sections from the connection (``{}``: the embedded default)."""
        if self._config is None:
            try:
                conn = self.get_connection(self.pywren_conn_id)
            except AirflowNotFoundException:
                self.log.log(
                    logging.DEBUG if self.resumed else logging.INFO,
                    "connection %r is not defined: using the embedded default configuration "
                    "(localhost compute and storage, plus ~/.pywren_config or PYWREN_CONFIG if set)",
                    self.pywren_conn_id,
                )
                self._config = {}
            else:
                self._config = self._config_from(conn)
        return copy.deepcopy(self._config)

    def _config_from(self, conn: Any) -> dict[str, dict[str, Any]]:
        if conn.conn_type and conn.conn_type != self.conn_type:
            raise PyWrenConfigError(
                f"connection {self.pywren_conn_id!r} has type {conn.conn_type!r}; PyWren needs a connection of type 'pywren'"
            )
        extra = conn_layout.parse_extra(conn.extra, self.pywren_conn_id)
        try:
            config = conn_layout.config_from_connection(conn.host, conn.login, conn.password, extra)
            kubernetes_conn_id = extra.get("kubernetes_conn_id")
            if kubernetes_conn_id:  # the k8s backend takes its credentials from a kubernetes connection
                kube = self.get_connection(kubernetes_conn_id)
                config["k8s"] = {
                    **conn_layout.kubernetes_settings(kube.conn_type, kube.extra_dejson),
                    **config.get("k8s", {}),
                }
            for secret in conn_layout.secret_values(config):
                mask_secret(secret)
            pw = load_config(config)["pywren"]  # fails here, naming the key, rather than at submit
        except PyWrenConfigError as exc:
            raise PyWrenConfigError(
                f"connection {self.pywren_conn_id!r}: {conn_layout.with_form_labels(str(exc))}"
            ) from None
        self.log.info(
            "connection %r: compute %s, storage %s, monitor %s",
            self.pywren_conn_id,
            pw["compute_backend"],
            pw["storage_backend"],
            "rabbitmq" if pw["rabbitmq_monitor"] else "storage",
        )
        return config

    async def aget_config(self) -> dict[str, dict[str, Any]]:
        """:meth:`get_config` for triggers: the connection lookup runs off the event loop."""
        return await asyncio.to_thread(self.get_config)

    # ---------------------------------------------------------- executors
    def get_conn(
        self,
        executor_id: str | None = None,
        rabbitmq_monitor: bool | None = None,
        runtime: str | None = None,
        runtime_memory: int | None = None,
    ) -> FunctionExecutor:
        """A FunctionExecutor configured from the connection.

        :param executor_id: continue this executor (its jobs in storage) instead of starting a new one.
        :param rabbitmq_monitor: override the connection's monitoring choice (None keeps it).
        :param runtime: override the runtime image.
        :param runtime_memory: override the default memory per call in MB.
        """
        config = self.get_config()
        if rabbitmq_monitor is not None:
            config.setdefault("pywren", {})["rabbitmq_monitor"] = bool(rabbitmq_monitor)
        return FunctionExecutor(config=config, runtime=runtime, runtime_memory=runtime_memory, executor_id=executor_id)

    def watch(self, job_ref: dict[str, Any] | JobRef, rabbitmq_monitor: bool | None = None) -> JobWatcher:
        """A JobWatcher following a referenced job (close ``watcher.executor`` when done)."""
        ref = _parse_ref(job_ref)
        executor = self.get_conn(executor_id=ref.executor_id, rabbitmq_monitor=rabbitmq_monitor)
        try:
            _check_same_storage(executor, ref, self.pywren_conn_id)
            return JobWatcher(executor, ref)
        except BaseException:
            executor.close()
            raise

    async def awatch(self, job_ref: dict[str, Any] | JobRef, rabbitmq_monitor: bool | None = None) -> JobWatcher:
        """:meth:`watch` for triggers: lookup, executor construction and manifest reads run off the event loop."""
        return await asyncio.to_thread(self.watch, job_ref, rabbitmq_monitor)

    def get_results(self, job_ref: dict[str, Any] | JobRef) -> list[Any]:
        """The values of a referenced job's results, read from storage, in call order.

        Use it in a downstream Python task: ``PyWrenHook().get_results(ti.xcom_pull("map_task"))``.
        Raises the first failed call's exception.
        """
        watcher = self.watch(job_ref)
        try:
            return watcher.results()
        finally:
            watcher.executor.close()

    # ---------------------------------------------------------------- UI
    def test_connection(self) -> tuple[bool, str]:
        """Check the configuration, storage access (write, read, delete) and the compute backend."""
        try:
            executor = self.get_conn()
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        try:
            storage = executor.storage
            probe = f"{storage.prefix}/.connection-test-{uuid.uuid4().hex[:8]}/"
            payload = b"pywren connection test"
            storage.put(probe + "probe", payload)
            if storage.get(probe + "probe") != payload:
                return False, f"storage {storage.location()} returned different bytes than were written"
            storage.delete_prefix(probe)
            return True, (
                f"storage {storage.location()} is writable and readable; compute backend "
                f"{executor.compute.name} accepted the configuration"
            )
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        finally:
            executor.close()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Standard connection fields: hidden, relabelled, with placeholders (the form also reads ``conn-fields``)."""
        return conn_layout.ui_field_behaviour()


def _parse_ref(job_ref: Any) -> JobRef:
    try:
        return JobRef.parse(job_ref)
    except JobRefError as exc:
        raise JobRefError(
            f"expected the job reference a PyWren operator pushes to XCom (a dict with {', '.join(REQUIRED_KEYS)}): {exc}"
        ) from None


def _check_same_storage(executor: FunctionExecutor, job_ref: JobRef, conn_id: str) -> None:
    """A reference can only be read with the storage it was written to."""
    storage = executor.storage
    wanted = job_ref.location
    if wanted and not storage.same_location(wanted):
        raise PyWrenConfigError(
            f"job {job_ref.name} of executor {job_ref.executor_id} lives in {wanted}, "
            f"but connection {conn_id!r} uses {storage.location()}; read it with the connection that submitted it"
        )
