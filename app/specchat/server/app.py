"""The OpenAI-compatible API over one engine: a Starlette app.

Routes: POST /v1/chat/completions (JSON or server-sent events), GET /v1/models, GET /health,
and llama.cpp's server's POST /tokenize, POST /detokenize, GET /props. Requests are checked, then
queued for the engine's one worker thread (first come, first served, at most `max_queue`
waiting); events come back through an asyncio queue. A client that goes away cancels its
generation. A stream that waits (its turn, a long prompt) gets SSE comments as keep-alives."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import sys
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from specchat.engine.speculative.constraint import GrammarError
from specchat.engine.speculative.suffix import HISTORY_TOKENS, SuffixHistory
from specchat.engine.types import DoneEvent, GenerationSettings, TokenEvent
from specchat.errors import ContextOverflowError, SpecchatError
from specchat.server import completions as text
from specchat.server import responses as fmt
from specchat.server import vocab
from specchat.server.errors import ApiError, bad_request, queue_full, shutting_down
from specchat.server.schema import Completion, load_body, parse_request
from specchat.server.served import ServedEngine
from specchat.server.tools import ReplyShape, call_grammar, syntax_of
from specchat.server.worker import EngineWorker, Failure, Item, Job, QueueFull, Skipped, chat_job

MAX_BODY_BYTES = 1 << 20  # a 1 MiB request holds far more text than any context we load
MAX_QUEUE = 64  # requests waiting for their turn; past this, 429 with Retry-After
KEEPALIVE_S = 5.0  # a stream that waits this long for its next event gets an SSE comment


@dataclass(frozen=True)
class ServerConfig:
    model: str  # the id /v1/models lists and replies carry
    defaults: GenerationSettings  # for fields a request leaves out (the command line's flags)
    api_key: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    max_queue: int = MAX_QUEUE
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API ("*": any)
    keepalive_s: float = KEEPALIVE_S
    # tokens of earlier requests (prompts and replies) the suffix drafter may copy from; 0: off
    suffix_history: int = HISTORY_TOKENS


class Channel:
    """Carries one job's items from the worker thread to the request's event loop."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._batches: asyncio.Queue[list[Item]] = asyncio.Queue()

    def deliver(self, batch: list[Item]) -> None:  # worker thread
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
            self._loop.call_soon_threadsafe(self._batches.put_nowait, batch)

    async def get(self) -> list[Item]:
        """The next batch: one target pass's tokens, and the end (DoneEvent or Failure)."""
        return await self._batches.get()


class ApiState:
    def __init__(self, engine: ServedEngine, config: ServerConfig) -> None:
        self.config = config
        self.engine = engine
        self.syntax = syntax_of(engine.template.source)  # how its model writes tool calls
        if config.suffix_history > 0:
            engine.use_suffix_history(SuffixHistory(config.suffix_history))
        self.worker = EngineWorker(engine, max_waiting=config.max_queue)
        self.stopping = threading.Event()

    def stop(self) -> None:
        """Ctrl+C / SIGTERM: refuse new requests, end running and waiting ones (any thread)."""
        self.stopping.set()
        self.worker.cancel_all()

    def close(self) -> None:
        self.stop()
        self.worker.close()


def create_app(engine: ServedEngine, config: ServerConfig) -> Starlette:
    """The app owns the engine from here on: its shutdown frees the models."""
    state = ApiState(engine, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await asyncio.to_thread(state.close)
            print("specchat: stopped; models freed", file=sys.stderr, flush=True)

    middleware = []
    if config.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    app = Starlette(
        routes=[
            Route("/health", _health, methods=["GET"]),
            Route("/v1/models", _models, methods=["GET"]),
            Route("/v1/chat/completions", _chat_completions, methods=["POST"]),
            Route("/v1/completions", _openai_completions, methods=["POST"]),
            Route("/completion", _llama_completion, methods=["POST"]),
            Route("/completions", _llama_completion, methods=["POST"]),
            Route("/infill", _infill, methods=["POST"]),
            *vocab_routes(),
        ],
        middleware=middleware,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _internal},
        lifespan=lifespan,
    )
    app.state.api = state
    return app


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    return ApiError(exc.status_code, str(exc.detail), kind=kind).response()


async def _internal(request: Request, exc: Exception) -> Response:
    return ApiError(500, f"internal error: {exc!r}", kind="server_error").response()


def _state(request: Request) -> ApiState:
    return request.app.state.api


def _checked(request: Request) -> ApiState:
    """The state, once the request has shown the API key (when one is set)."""
    state = _state(request)
    _check_key(request, state.config)
    return state


async def _health(request: Request) -> Response:
    state = _state(request)
    status = "stopping" if state.stopping.is_set() else "ok"
    counters = asdict(state.worker.counters)
    return JSONResponse({"status": status, "waiting": state.worker.waiting, **counters})


async def _models(request: Request) -> Response:
    state = _checked(request)
    model = {"id": state.config.model, "object": "model", "created": 0, "owned_by": "specchat"}
    return JSONResponse({"object": "list", "data": [model]})


def _check_key(request: Request, config: ServerConfig) -> None:
    if config.api_key is None:
        return
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), config.api_key.encode()
    ):
        raise ApiError(
            401,
            "missing or wrong API key (send Authorization: Bearer KEY)",
            kind="authentication_error",
            code="invalid_api_key",
        )


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be too large (its declared length,
    or the bytes received so far): never read whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is larger than {limit} bytes", code="body_too_large")


async def read_body(request: Request) -> tuple[ApiState, bytes]:
    """The checked state and the body (within the size limit)."""
    state = _checked(request)
    return state, await _read_body(request, state.config.max_body_bytes)


async def _chat_completions(request: Request) -> Response:
    state, raw = await read_body(request)
    completion = _with_tools(state, parse_request(raw, state.config.defaults))
    channel = Channel()
    tools = completion.tools.tools if completion.tools else None
    job = _submit(
        state, chat_job(completion.messages, completion.settings, channel.deliver, tools)
    )
    watcher = asyncio.create_task(_cancel_on_disconnect(request, job))
    try:
        return await _respond(state, completion, channel, job)
    except BaseException:
        job.cancel.set()
        raise
    finally:
        watcher.cancel()  # a streaming response watches the connection itself from here on


def _with_tools(state: ApiState, completion: Completion) -> Completion:
    """Tools need a template that renders them; a forced call (tool_choice required or named)
    is made certain by a grammar of the tools' schemas."""
    tools = completion.tools
    if tools is None:
        return completion
    template = state.engine.template
    if not template.supports_tools:
        raise bad_request(
            f"the chat template of {state.config.model} has no tool support (it does not "
            "render tools), so this model cannot be given tools",
            param="tools",
            code="tools_not_supported",
        )
    if not tools.forced:
        return completion
    if completion.settings.grammar is not None:
        raise bad_request(
            "a forced tool call (tool_choice) and a response format or grammar cannot be "
            "combined",
            param="tool_choice",
        )
    grammar = call_grammar(tools, state.syntax)
    return dataclasses.replace(
        completion, settings=dataclasses.replace(completion.settings, grammar=grammar)
    )


def _submit(state: ApiState, job: Job) -> Job:
    try:
        taken = not state.stopping.is_set() and state.worker.submit(job)
    except QueueFull as full:
        raise queue_full(full.retry_after_s) from None
    if not taken:
        raise shutting_down()
    return job


async def first_batch(channel: Channel, wait: float | None) -> list[Item] | None:
    """The job's first batch (its turn, then the prompt pass), an error status if the engine
    refused it; None when it has not come within `wait` seconds (a stream then starts with
    keep-alives, and a later refusal is an error event)."""
    try:
        first = await asyncio.wait_for(channel.get(), wait)
    except TimeoutError:
        return None
    _raise_failure(first[0])
    return first


async def next_batch(channel: Channel, keepalive_s: float) -> AsyncIterator[list[Item] | None]:
    """A stream's batches; None after each `keepalive_s` without one (time for a comment)."""
    while True:
        try:
            yield await asyncio.wait_for(channel.get(), keepalive_s)
        except TimeoutError:
            yield None


KEEPALIVE = b": keep-alive\n\n"  # an SSE comment: clients skip it, proxies see traffic


async def _respond(state: ApiState, completion: Completion, channel: Channel, job: Job) -> Response:
    """The reply as JSON or as a stream, or an error status if the engine refused the job
    (a stream that had to wait longer than the keep-alive period ends with an error event)."""
    ids = fmt.ReplyIds(state.config.model)
    if completion.stream:
        first = await first_batch(channel, state.config.keepalive_s)
        shape = _shape(state, completion)
        piece = state.engine.target.piece
        opening = fmt.sse(fmt.chunk(ids, {"role": "assistant", "content": ""}))
        render = _chat_events(ids, completion, shape, piece)
        stream = sse_stream(first, channel, job, state.config.keepalive_s, render, opening)
        return StreamingResponse(stream, media_type="text/event-stream", headers=_SSE)
    first = await first_batch(channel, None)
    assert first is not None
    shape = _shape(state, completion)
    done, events = await _until_done(first, channel)
    logprobs = fmt.chat_logprobs(events, state.engine.target.piece)
    content = shape.content(events)
    parsed = shape.end()
    message: dict[str, object] | None = None
    if parsed.calls:
        message = {
            "role": "assistant",
            "content": parsed.content,
            "tool_calls": fmt.tool_calls(parsed.calls),
        }
    elif completion.tools is not None:
        message = {"role": "assistant", "content": content + (parsed.content or "")}
    finish = "tool_calls" if parsed.calls else None
    return JSONResponse(
        fmt.completion(ids, done, completion.return_tokens, message, finish, logprobs)
    )


_SSE = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _cancel_on_disconnect(request: Request, job: Job) -> None:
    """While the request waits for its turn or its reply, a closed connection cancels it."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    job.cancel.set()


def _raise_failure(item: Item) -> None:
    """The engine refused the job before its first token: answer with an error status."""
    if isinstance(item, Skipped):
        raise shutting_down()
    if isinstance(item, Failure):
        raise _api_error_for(item.error)


def _api_error_for(error: Exception) -> ApiError:
    if isinstance(error, ContextOverflowError):
        return bad_request(str(error), param="messages", code="context_length_exceeded")
    if isinstance(error, GrammarError):
        return bad_request(str(error), param="grammar", code="invalid_grammar")
    if isinstance(error, SpecchatError):
        return bad_request(str(error))
    return ApiError(500, f"generation failed: {error}", kind="server_error")


async def _until_done(
    batch: list[Item], channel: Channel
) -> tuple[DoneEvent, list[TokenEvent]]:
    """The reply's end and its tokens."""
    events: list[TokenEvent] = []
    while True:
        for item in batch:
            if isinstance(item, TokenEvent):
                events.append(item)
                continue
            if isinstance(item, DoneEvent):
                if item.stats.finish_reason == "cancelled":
                    raise shutting_down()  # the client is gone (nobody reads this) or we stop
                return item, events
            _raise_failure(item)
        batch = await channel.get()


def _shape(state: ApiState, completion: Completion) -> ReplyShape:
    target = state.engine.target
    tools = completion.tools
    return ReplyShape(
        state.syntax if tools is not None else None,
        lambda token: target.token_text(token).decode(errors="replace"),
        tools.names if tools is not None else (),
    )


Render = Callable[[list[Item]], tuple[bytes, bool]]  # a batch -> its events, and "the end"


async def sse_stream(
    first: list[Item] | None,
    channel: Channel,
    job: Job,
    keepalive_s: float,
    render: Render,
    opening: bytes = b"",
) -> AsyncIterator[bytes]:
    """A stream's bytes: `opening`, then each batch as `render` writes it until it says the
    stream ends; an SSE comment every `keepalive_s` while nothing comes (also before `first`,
    None when the job had not started within the keep-alive period). However the stream ends
    (the client went away mid-stream included), the job is cancelled at once."""
    batches = next_batch(channel, keepalive_s)
    try:
        if opening:
            yield opening
        batch = first
        while True:
            if batch is None:
                yield KEEPALIVE
            else:
                out, last = render(batch)
                if out:
                    yield out
                if last:
                    return
            batch = await anext(batches)
    finally:
        job.cancel.set()  # the client went away mid-stream: stop generating at once
        await batches.aclose()


def _chat_events(
    ids: fmt.ReplyIds, completion: Completion, shape: ReplyShape, piece: fmt.Piece
) -> Render:
    """Chat server-sent events: content deltas (a target pass's tokens each), then the finish
    chunk (with timings and specchat's stats), the usage chunk if asked, [DONE]. An error
    mid-stream is one `error` event."""

    def render(batch: list[Item]) -> tuple[bytes, bool]:
        tokens = [item for item in batch if isinstance(item, TokenEvent)]
        text = shape.content(tokens)
        logprobs = fmt.chat_logprobs(tokens, piece)
        end = [item for item in batch if not isinstance(item, TokenEvent)]
        out = b""
        if text or logprobs:
            out = fmt.sse(fmt.chunk(ids, {"content": text}, logprobs=logprobs))
        if end:
            closing = _closing(ids, end[0], completion, shape)
            return out + b"".join(fmt.sse(data) for data in closing), True
        return out, False

    return render


def _closing(
    ids: fmt.ReplyIds, end: Item, completion: Completion, shape: ReplyShape
) -> list[dict | str]:
    """The events after the last token: the content held back or the tool calls, the finish,
    the usage if asked, [DONE]; or an error."""
    if isinstance(end, Skipped) or (
        isinstance(end, DoneEvent) and end.stats.finish_reason == "cancelled"
    ):
        return [shutting_down().body()]
    if isinstance(end, Failure):
        return [_api_error_for(end.error).body()]
    assert isinstance(end, DoneEvent)
    parsed = shape.end()
    out: list[dict | str] = []
    if parsed.calls:
        out += [fmt.chunk(ids, delta) for delta in fmt.tool_call_deltas(parsed.calls)]
    elif parsed.content:
        out.append(fmt.chunk(ids, {"content": parsed.content}))
    out.append(fmt.last_chunk(ids, end, "tool_calls" if parsed.calls else None))
    if completion.include_usage:
        out.append(fmt.usage_chunk(ids, end))
    out.append("[DONE]")
    return out


def vocab_routes() -> list[Route]:
    return [
        Route("/tokenize", _tokenize, methods=["POST"]),
        Route("/detokenize", _detokenize, methods=["POST"]),
        Route("/props", _props, methods=["GET"]),
    ]


async def _tokenize(request: Request) -> Response:
    state, raw = await read_body(request)
    data = load_body(raw)
    return JSONResponse(await asyncio.to_thread(vocab.tokenize, state.engine, data))


async def _detokenize(request: Request) -> Response:
    state, raw = await read_body(request)
    data = load_body(raw)
    return JSONResponse(await asyncio.to_thread(vocab.detokenize, state.engine, data))


async def _props(request: Request) -> Response:
    state = _checked(request)
    return JSONResponse(vocab.props(state.engine, state.config.model, state.config.defaults))


# ---- text completion and fill-in-the-middle (server/completions.py) ---------------------------


async def _openai_completions(request: Request) -> Response:
    return await _text_completion(request, text.Api.OPENAI)


async def _llama_completion(request: Request) -> Response:
    return await _text_completion(request, text.Api.LLAMA)


async def _infill(request: Request) -> Response:
    return await _text_completion(request, text.Api.INFILL)


async def _text_completion(request: Request, api: text.Api) -> Response:
    state, raw = await read_body(request)
    req = text.parse_text_request(load_body(raw), state.config.defaults, api)
    tokens = await asyncio.to_thread(text.prompt_tokens, state.engine.target, req)
    channel = Channel()
    job = _submit(
        state,
        Job(lambda engine, cancel: engine.generate(tokens, req.settings, cancel), channel.deliver),
    )
    watcher = asyncio.create_task(_cancel_on_disconnect(request, job))
    try:
        return await _text_respond(state, req, channel, job, len(tokens))
    except BaseException:
        job.cancel.set()
        raise
    finally:
        watcher.cancel()


async def _text_respond(
    state: ApiState, req: text.TextRequest, channel: Channel, job: Job, prompt_n: int
) -> Response:
    ids = text.reply_ids(state.config.model)
    piece = state.engine.target.piece
    if req.stream and not req.warmup:
        first = await first_batch(channel, state.config.keepalive_s)
        render = _text_events(ids, req, piece)
        stream = sse_stream(first, channel, job, state.config.keepalive_s, render)
        return StreamingResponse(stream, media_type="text/event-stream", headers=_SSE)
    first = await first_batch(channel, None)
    assert first is not None
    done, events = await _until_done(first, channel)
    if req.api is text.Api.OPENAI:
        return JSONResponse(text.openai_body(ids, done, events, piece))
    return JSONResponse(text.llama_body(req, state.config.model, done, prompt_n))


def _text_events(ids: fmt.ReplyIds, req: text.TextRequest, piece: fmt.Piece) -> Render:
    """OpenAI: text_completion chunks, the finish chunk, the usage if asked, [DONE].
    llama.cpp: {"content", "stop": false} chunks, then its final object (no [DONE])."""
    offset = 0

    def render(batch: list[Item]) -> tuple[bytes, bool]:
        nonlocal offset
        tokens = [item for item in batch if isinstance(item, TokenEvent)]
        delta = "".join(t.text for t in tokens)
        end = [item for item in batch if not isinstance(item, TokenEvent)]
        out = b""
        if tokens and req.api is text.Api.OPENAI:
            out = fmt.sse(text.openai_chunk(ids, delta, tokens, piece, offset))
        elif tokens:
            out = fmt.sse(text.llama_chunk(delta, tokens))
        offset += len(delta)
        if end:
            closing = _text_closing(ids, end[0], req, piece)
            return out + b"".join(fmt.sse(data) for data in closing), True
        return out, False

    return render


def _text_closing(
    ids: fmt.ReplyIds, end: Item, req: text.TextRequest, piece: fmt.Piece
) -> list[dict | str]:
    if isinstance(end, Skipped) or (
        isinstance(end, DoneEvent) and end.stats.finish_reason == "cancelled"
    ):
        return [shutting_down().body()]
    if isinstance(end, Failure):
        return [_api_error_for(end.error).body()]
    assert isinstance(end, DoneEvent)
    if req.api is not text.Api.OPENAI:
        return [text.llama_body(req, ids.model, end, end.stats.prompt_tokens)]
    finish = text.openai_chunk(ids, "", (), piece, 0, fmt.finish_reason(end.stats))
    out: list[dict | str] = [{**finish, **fmt.extras(end)}]
    if req.include_usage:
        out.append({**ids.head("text_completion"), "choices": [], "usage": fmt.usage(end.stats)})
    return [*out, "[DONE]"]
