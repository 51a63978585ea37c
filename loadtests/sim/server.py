"""One simulated vLLM server: an aiohttp application over one ``SimEngine``, listening on one port.

Routes (vLLM's): ``POST /v1/chat/completions``, ``POST /v1/completions`` (streaming and not),
``GET /v1/models``, ``GET /health``, ``GET /metrics``. Handlers stay thin: parsing lives in
``api_requests``, bodies in ``api_responses``, the work in the engine. Every response carries
``x-sim-backend: <server id>`` so tests and experiments can see who answered.

The runner is built with ``handler_cancellation=True``: when a client disconnects, aiohttp cancels the
handler, and the handler's ``finally`` aborts the engine request, which frees its KV blocks at once, as
vLLM does on disconnect (streaming or not).

Fault injection, settable at construction or any time later: ``fail_rate`` (fraction of completion
requests answered 500 before any byte of a body), ``down`` (``/health`` answers 503, ``/metrics`` and
completions 503 too), and ``stop()`` / ``start()`` (the port refuses connections, then listens again).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence

from aiohttp import web

from loadtests.sim.api_requests import ApiError, ParsedRequest, decode_body, parse_request
from loadtests.sim.api_responses import DONE, ResponseWriter, error_body, filler_text, models_list, usage
from loadtests.sim.engine import SimEngine
from loadtests.sim.metrics import CONTENT_TYPE, build_registry, render
from loadtests.sim.request import RequestState, SimRequest

BACKEND_HEADER = "x-sim-backend"
TRACEPARENT_ECHO_HEADER = "x-sim-traceparent"
MAX_BODY_BYTES = 64 * 1024 * 1024


class SimServer:
    """An HTTP front end for ``engine`` named ``server_id``; ``start()`` binds, ``close()`` tears down."""

    def __init__(
        self,
        engine: SimEngine,
        *,
        server_id: str = "sim-0",
        host: str = "127.0.0.1",
        port: int = 0,
        models: Sequence[str] | None = None,
        fail_rate: float = 0.0,
        seed: int | str | None = None,
    ) -> None:
        self.engine = engine
        self.id = server_id
        self.host = host
        self.port = port
        """The bound port once started (0 before, when 0 asked the OS for a free one)."""
        self.models: list[str] = list(models) if models else [engine.profile.model]
        self.fail_rate = fail_rate
        self.down = False
        self.registry = build_registry(engine, self.models[0])
        self._rng = random.Random(seed if seed is not None else server_id)
        self._created = int(time.time())
        self._runner: web.AppRunner | None = None
        self._inflight: set[SimRequest] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._runner is not None

    # ---- lifecycle ---------------------------------------------------------------------------------
    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.on_response_prepare.append(self._tag_response)
        return app

    async def start(self) -> None:
        """Start the engine (if needed) and listen; a restart after ``stop()`` reuses the same port."""
        await self.engine.start()
        if self._runner is not None:
            return
        runner = web.AppRunner(self._build_app(), handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, backlog=2048)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening and abort in-flight requests (the engine and its prefix cache live on)."""
        for req in list(self._inflight):
            self.engine.abort(req)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def close(self) -> None:
        await self.stop()
        await self.engine.stop()

    # ---- handlers ----------------------------------------------------------------------------------
    async def _tag_response(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers[BACKEND_HEADER] = self.id
        # Echo the W3C trace context vLLM would have joined, so tests can see what reached the backend.
        if traceparent := request.headers.get("traceparent"):
            response.headers[TRACEPARENT_ECHO_HEADER] = traceparent

    @staticmethod
    def _error(e: ApiError) -> web.Response:
        return web.Response(
            status=e.status,
            body=error_body(e.status, e.message, e.err_type, e.param),
            content_type="application/json",
        )

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=503 if self.down else 200)

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503, text="simulated server is down")
        return web.Response(body=render(self.registry), headers={"Content-Type": CONTENT_TYPE})

    async def _models(self, request: web.Request) -> web.Response:
        body = models_list(self.models, self.engine.profile.max_model_len, self._created)
        return web.Response(body=body, content_type="application/json")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._completion(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._completion(request, chat=False)

    async def _completion(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        profile = self.engine.profile
        try:
            if self.down:
                raise ApiError(503, "simulated server is down", "ServiceUnavailableError")
            parsed = parse_request(
                decode_body(await request.read()),
                chat=chat,
                served=self.models,
                max_model_len=profile.max_model_len,
                default_max_tokens=profile.default_max_tokens,
            )
            if self.fail_rate > 0 and self._rng.random() < self.fail_rate:
                raise ApiError(500, "simulated failure (fail_rate)", "InternalServerError")
        except ApiError as e:
            return self._error(e)
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        req = self.engine.add_request(
            parsed.prompt_ids, parsed.max_tokens, request_id=request_id, streaming=parsed.stream
        )
        writer = ResponseWriter(request_id, parsed.model, chat=chat)
        self._inflight.add(req)
        try:
            if parsed.stream:
                return await self._stream(request, req, writer, parsed)
            return await self._full(req, writer)
        finally:
            self._inflight.discard(req)
            self.engine.abort(req)  # a no-op when the request finished; frees its blocks otherwise

    @staticmethod
    def _usage(req: SimRequest) -> dict[str, object]:
        return usage(req.num_prompt_tokens, req.num_output, req.cached_tokens)

    async def _full(self, req: SimRequest, writer: ResponseWriter) -> web.Response:
        await req.wait_finished()
        if req.state is RequestState.ABORTED:
            return self._error(ApiError(503, "request aborted: the server is stopping", "ServiceUnavailableError"))
        body = writer.full(filler_text(0, req.num_output), req.finish_reason, self._usage(req))
        return web.Response(body=body, content_type="application/json")

    async def _stream(
        self, request: web.Request, req: SimRequest, writer: ResponseWriter, parsed: ParsedRequest
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            async for start, end in req.stream():
                finish = req.finish_reason if end >= req.max_tokens else None
                chunk = writer.text_chunk(filler_text(start, end), finish)
                if start == 0 and writer.chat:  # like vLLM, the role chunk waits for the first token
                    chunk = writer.role_chunk() + chunk
                await resp.write(chunk)
            if req.state is RequestState.ABORTED:
                return resp  # server stopping: the stream ends without [DONE], like a dropped connection
            if parsed.include_usage:
                await resp.write(writer.usage_chunk(self._usage(req)))
            await resp.write(DONE)
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the client went away; the caller's finally aborts the request
        return resp
