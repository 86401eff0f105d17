"""An OpenWhisk-API test server. It is a test server, NOT Apache OpenWhisk.

It answers the part of the public OpenWhisk REST API that the ``ibm_cf`` backend and the
``pywren`` CLI use, on 127.0.0.1:

* ``/api/v1/namespaces``, ``/api/v1/namespaces/{ns}/actions`` (GET, with ``limit``/``skip``),
  ``/api/v1/namespaces/{ns}/actions/{name}`` GET / PUT (``overwrite=true``) / DELETE / POST
  (invoke: ``blocking=false`` -> 202 ``{"activationId"}``; ``blocking=true`` waits, ``result=true``),
  ``/api/v1/namespaces/{ns}/activations/{id}`` GET (404 until the activation has ended) and
  ``/api/v1/namespaces/{ns}/activations`` GET of ended activations, newest start first, with
  ``name``, ``since``/``upto`` (start time, epoch ms), ``limit`` (0 = 200, at most 200),
  ``skip``, ``docs`` (full records; summaries carry ``statusCode``) and ``count``;
  ``_`` is the key's own namespace.
* Basic auth with ``uuid:key`` (401 without or with a wrong key, 403 for another key's
  namespace, 404 for an unknown namespace or action), and bearer tokens from a stand-in
  IAM token endpoint ``POST /identity/token`` for namespaces registered with an IAM key.
* Fault injection: ``inject(status, count)`` makes the next invocations answer 429/500/...;
  ``invoke_delay`` slows every invocation answer; ``fail_activations(count)`` makes the next
  activations end with a platform error without running.
* Records for tests and the bench: every accepted invocation (action, payload, User-Agent),
  attempts, the most invocation POSTs in flight at once, client connections used, and every
  request for activation records (``activation_requests``).

Each activation runs the real function-side entry point
``airflow_pywren.executor.worker.handler.main(payload)`` in another process, a warm
"container" of the runtime image's action proxy, started on demand up to ``containers``.
Unlike OpenWhisk it never pulls or runs the action's docker image (the proxy runs with this
Python), and enforces an action's timeout and memory limits by killing its container.

Modules:

* :mod:`.server`: ``OpenWhiskTestServer``: namespaces, faults and records; HTTP lifecycle.
* :mod:`.routes`: the REST API: the route table (URL patterns), authentication, handlers.
* :mod:`.activations`: activation records, the containers they run in, the runner.
* :mod:`.fixtures`: the pytest fixtures ``openwhisk_server`` and ``openwhisk_config``.

Standalone: ``python -m tests.services.openwhisk --port 3233`` prints its endpoint and key.
"""

from tests.services.openwhisk.activations import ABNORMAL_RUN, MEMORY_EXHAUSTED, Activation
from tests.services.openwhisk.server import TEST_RUNTIME, Namespace, OpenWhiskTestServer

__all__ = ["ABNORMAL_RUN", "MEMORY_EXHAUSTED", "TEST_RUNTIME", "Activation", "Namespace", "OpenWhiskTestServer"]
