"""The twin's server on loopback: a fast front for the data plane, moto behind it for the control plane.

``MotoServer`` owns the twin's one port with the asynchronous front (``sme.local.aws.front``), which
answers the data plane itself (InvokeEndpoint while a ``LocalAws`` runs, and calls to deployed REST APIs)
and relays every other request to moto's backends. Those run in a thread of the current process (so the
process can extend them, see ``sme.local.aws.patches``), served by werkzeug on a second loopback port
through the call recorder (``sme.local.aws.recorder``). Moto's own endpoints (``/moto-api/...``) pass
through unrecorded.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from sme.local.aws import execute_api
from sme.local.aws.recorder import CALLS_KEPT, Call, Recorder, refusal, refuse_browsers  # noqa: F401 (re-exported)


class _NoBackend(Exception):
    def __init__(self, host: str):
        super().__init__(host)
        self.service = host.split(".")[0]


def _dispatcher(create_app: Any) -> Any:
    """moto's dispatcher, but a request for a service moto has no backend for (the Pricing API: ``sme
    plan-capacity`` and the report ask it for prices) is answered with an error that names it, as S3 answers
    what it does not implement (501 NotImplemented), instead of moto's print on the console the twin shares
    with the user and a 500 HTML page."""
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    class Dispatcher(DomainDispatcherApplication):
        def get_backend_for_host(self, host: str | None) -> Any:
            if (host and "amazonaws.com" in host and host not in backends.list_of_moto_modules()
                    and not any(p.match(f"http://{host}") for _, p in self.backend_url_patterns)):
                raise _NoBackend(host)
            return super().get_backend_for_host(host)

        def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
            try:
                return super().__call__(environ, start_response)
            except _NoBackend as exc:
                body = json.dumps({"__type": "NotImplemented", "message": f"sme's local AWS does not serve the "
                                   f"{exc.service} API"}).encode()
                start_response("501 Not Implemented", [("Content-Type", "application/x-amz-json-1.1"),
                                                       ("x-amzn-ErrorType", "NotImplemented"),
                                                       ("Content-Length", str(len(body)))])
                return [body]

    return Dispatcher(create_app)


class MotoServer:
    """The twin's front on host:port, and moto's app behind the Recorder in a werkzeug thread on loopback."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.recorder: Recorder | None = None
        self.front: Any = None

    def start(self) -> "MotoServer":
        from moto.moto_server.werkzeug_app import create_backend_app
        from werkzeug.serving import make_server

        from sme.local.aws import patches
        from sme.local.aws.front import Front

        patches.install_all()
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)  # moto answers errors itself
        self.recorder = Recorder(_dispatcher(create_backend_app))
        self._server = make_server("127.0.0.1", 0, self.recorder, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        try:
            self.front = Front(self.recorder, self._server.server_port).start(self.host, self.port)
        except OSError:
            self._stop_moto()
            raise
        self.port = self.front.port
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        """Clear every backend (moto's /moto-api/reset) and the recorded calls."""
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")).read()
        from sme.local.aws.patches.sagemaker import LIFECYCLE

        LIFECYCLE.reset()
        execute_api.reset()
        if self.recorder:
            self.recorder.reset()

    def stop(self) -> None:
        execute_api.reset()
        if self.front:
            self.front.stop()
        self._stop_moto()

    def _stop_moto(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
