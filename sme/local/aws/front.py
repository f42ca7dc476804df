"""The twin's front: one asynchronous HTTP server (aiohttp) on the twin's port, in a thread of its own.

A load test through the twin must measure the model, not the twin. So the data plane is answered here,
on an event loop, without moto:

- InvokeEndpoint while a ``LocalAws`` runs (``patches.sagemaker_runtime.answer``), forwarded to the
  instances' runtimes over kept-alive connections (``runtime_pool``), and InvokeEndpointWithResponseStream
  (``stream_invoke.answer``), relayed as event-stream frames as the runtime writes;
- InvokeEndpointAsync while a ``LocalAws`` runs (``async_queue.answer``): queued, then processed the same way;
- calls to deployed REST APIs (``execute_api.answer``), whose Lambda environments' pipes are on the same
  loop; the function's own AWS calls come back to this front.

Everything else (every control-plane call, ``/moto-api``) is relayed as it came to moto, which werkzeug
serves on another loopback port behind the call recorder (``server.py``): moto keeps its own server, so
its requests look exactly as they did. Before anything, the front refuses what a web page could send
(``server.refusal``); the data plane's calls are kept in the recorder like the others, and an
InvokeEndpoint meets the recorder's ``fault`` hook as it did behind it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

from sme.local.aws import async_queue, execute_api, stream_invoke, zones
from sme.local.aws.patches import sagemaker_runtime
from sme.local.aws.runtime_pool import RuntimePool
from sme.local.aws.recorder import Call, Recorder, error_reply, refusal

# not relayed: they describe one hop's connection, not the request (Content-Length is set anew)
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                        "upgrade", "content-length"})


class Front:
    def __init__(self, recorder: Recorder, moto_port: int):
        self.recorder = recorder
        self.moto_base = f"http://127.0.0.1:{moto_port}"
        self.port = 0
        self.host = "127.0.0.1"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._moto: Any = None  # aiohttp.ClientSession to moto's werkzeug
        self._runtimes = RuntimePool()

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self, host: str, port: int) -> "Front":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1024)
        except OSError:
            sock.close()
            raise
        self.host, self.port = host, sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        opened = self._loop.run_until_complete(self._open(sock))  # before the thread: errors surface here
        self._thread = threading.Thread(target=self._loop.run_forever, name="sme-front", daemon=True)
        self._thread.start()
        return opened

    async def _open(self, sock: socket.socket) -> "Front":
        import aiohttp
        from aiohttp import web

        server = web.Server(self._handle, access_log=None)
        self._runner = web.ServerRunner(server, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        quiet = {"User-Agent", "Accept-Encoding", "Accept", "Content-Type"}  # add nothing the client did not send
        self._moto = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64), auto_decompress=False,
                                           skip_auto_headers=quiet, timeout=aiohttp.ClientTimeout(total=None))
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None

    async def _close(self) -> None:
        await self._runner.cleanup()
        await self._moto.close()
        self._runtimes.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- requests --------------------------------------------------------------------------------------
    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        received = time.perf_counter()
        headers = request.headers
        refused = refusal(request.method, headers.get("Origin"), headers.get("Host", ""))
        if refused:
            return web.Response(status=403, text=refused)
        path = request.path
        if sagemaker_runtime.is_invocation(request.method, path):
            return await self._invoke_endpoint(request, path, received)
        if stream_invoke.is_stream_invocation(request.method, path):
            return await self._invoke_endpoint(request, path, received, stream=True)
        if async_queue.is_async_invocation(request.method, path):
            return await self._invoke_endpoint_async(request, path)
        if execute_api.is_execute_api(path):
            return await self._execute_api(request, path, received)
        if zones.is_zone_call(request.method, path):  # the twin's own control: no AWS API fails a zone
            return _response(await zones.answer(path, request.content.read))
        return await self._relay(request)

    async def _invoke_endpoint(self, request: Any, path: str, received: float, stream: bool = False) -> Any:
        scope = _scope_service(request.headers.get("Authorization", ""))
        injected = self.recorder.record(Call(scope, f"POST {path}", "POST", path))
        if injected:
            return _response(error_reply(False, *injected))
        if stream:  # InvokeEndpointWithResponseStream: event-stream frames written as the runtime answers
            return await stream_invoke.answer(request, path, received)
        return _response(await sagemaker_runtime.answer(path, request.headers, request.content.read,
                                                        self._runtimes.post, received))

    async def _invoke_endpoint_async(self, request: Any, path: str) -> Any:
        scope = _scope_service(request.headers.get("Authorization", ""))
        injected = self.recorder.record(Call(scope, f"POST {path}", "POST", path))
        if injected:
            return _response(error_reply(False, *injected))
        return _response(await async_queue.answer(path, request.headers, request.content.read, self._runtimes.post))

    async def _execute_api(self, request: Any, path: str, received: float) -> Any:
        body = await request.content.read()
        self.recorder.record(Call("execute-api", f"{request.method} {path}", "INVOKE", path), with_fault=False)
        call = execute_api.ApiCall(request.method, path, request.rel_url.raw_query_string,
                                   {k.lower(): v for k, v in request.headers.items()}, body,
                                   request.remote or "127.0.0.1", self.url, received)
        return _response(await execute_api.answer(call))

    async def _relay(self, request: Any) -> Any:
        """The request to moto as it came (method, raw path and query, headers, body), and moto's reply back."""
        import aiohttp
        from aiohttp import web
        from yarl import URL

        body = await request.content.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        try:
            async with self._moto.request(request.method, URL(self.moto_base + request.raw_path, encoded=True),
                                          headers=headers, data=body if body else None,
                                          allow_redirects=False) as reply:
                data = await reply.read()
                out = [(k, v) for k, v in reply.headers.items()
                       if k.lower() not in HOP_BY_HOP or (k.lower() == "content-length" and not data)]
                return web.Response(status=reply.status, reason=reply.reason, headers=_multi(out),
                                    body=data if data else None)
        except aiohttp.ClientError as exc:
            return web.Response(status=502, text=f"the local AWS's control plane did not answer: {exc}")


def _scope_service(authorization: str) -> str:
    """The service a SigV4 Authorization is scoped to (Credential=KEY/DATE/REGION/SERVICE/aws4_request)."""
    start = authorization.find("Credential=")
    parts = authorization[start + 11:].split("/", 4) if start >= 0 else []
    return parts[3] if len(parts) > 4 else ""


def _multi(pairs: list[tuple[str, str]]) -> Any:
    from multidict import CIMultiDict

    return CIMultiDict(pairs)


def _response(reply: tuple[int, list, bytes]) -> Any:
    from aiohttp import web

    status, headers, body = reply
    return web.Response(status=status, body=body,
                        headers=_multi([(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]))
