"""The JSON the API answers with: OpenAI's chat-completion objects and chunks, plus

- `"specchat"`: the reply's stats under the names `specchat ask --json` uses (README, Stats);
- `"timings"`: llama.cpp's server's names (`prompt_n`, `predicted_per_second`, `draft_n`,
  `draft_n_accepted`...), so tools written for it read specchat too."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from specchat.engine.types import DoneEvent, Stats, TokenEvent, TokenLogprob, ToolCall

FINISH_REASONS = {"stop": "stop", "length": "length", "context": "length"}


@dataclass(frozen=True)
class ReplyIds:
    """What every object of one reply repeats."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def head(self, kind: str) -> dict[str, object]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def finish_reason(stats: Stats) -> str:
    return FINISH_REASONS.get(stats.finish_reason, "stop")


def specchat_stats(stats: Stats) -> dict[str, object]:
    """The stats in `ask --json`'s order: the fixed names first, then the extra context."""
    return stats.to_ordered_dict()


def usage(stats: Stats) -> dict[str, object]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.generated_tokens,
        "total_tokens": stats.prompt_tokens + stats.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": stats.cached_prompt_tokens},
    }


def timings(stats: Stats) -> dict[str, object]:
    """llama.cpp server's `timings` object: prompt_n counts the prompt tokens evaluated (not
    those reused from the cache, which are cache_n); predicted_* cover the generated tokens."""
    prompt_n = stats.prompt_tokens - stats.cached_prompt_tokens
    predicted_n = stats.generated_tokens
    return {
        "cache_n": stats.cached_prompt_tokens,
        "prompt_n": prompt_n,
        "prompt_ms": stats.prompt_ms,
        "prompt_per_token_ms": _per(stats.prompt_ms, prompt_n),
        "prompt_per_second": _per(prompt_n * 1000, stats.prompt_ms),
        "predicted_n": predicted_n,
        "predicted_ms": stats.generation_ms,
        "predicted_per_token_ms": _per(stats.generation_ms, predicted_n),
        "predicted_per_second": _per(predicted_n * 1000, stats.generation_ms),
        "draft_n": stats.drafted,
        "draft_n_accepted": stats.accepted,
    }


def _per(a: float, b: float) -> float:
    return a / b if b else 0.0


def extras(done: DoneEvent) -> dict[str, object]:
    stats = {**specchat_stats(done.stats), "dropped_turns": done.dropped_turns}
    return {"timings": timings(done.stats), "specchat": stats}


def completion(
    ids: ReplyIds,
    done: DoneEvent,
    return_tokens: bool,
    message: dict[str, object] | None = None,
    finish: str | None = None,
    logprobs: dict[str, object] | None = None,
) -> dict[str, object]:
    """`message` and `finish` replace the plain text reply's (tool calls)."""
    body = {
        **ids.head("chat.completion"),
        "choices": [
            {
                "index": 0,
                "message": message or {"role": "assistant", "content": done.text},
                "logprobs": logprobs,
                "finish_reason": finish or finish_reason(done.stats),
            }
        ],
        "usage": usage(done.stats),
        **extras(done),
    }
    if return_tokens:
        body["tokens"] = list(done.token_ids)
    return body


def tool_call_deltas(calls: Sequence[ToolCall]) -> list[dict[str, object]]:
    """OpenAI's streamed calls: per call, its id and name, then its arguments."""
    out: list[dict[str, object]] = []
    for i, call in enumerate(calls):
        head = {"index": i, "id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": ""}}
        out.append({"tool_calls": [head]})
        out.append({"tool_calls": [{"index": i, "function": {"arguments": call.arguments}}]})
    return out


def tool_calls(calls: Sequence[ToolCall]) -> list[dict[str, object]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


def chunk(
    ids: ReplyIds,
    delta: dict[str, object],
    finish: str | None = None,
    logprobs: dict[str, object] | None = None,
) -> dict[str, object]:
    return {
        **ids.head("chat.completion.chunk"),
        "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
    }


def last_chunk(ids: ReplyIds, done: DoneEvent, finish: str | None = None) -> dict[str, object]:
    """The chunk with the finish reason; like llama.cpp's server, it carries the timings."""
    return {**chunk(ids, {}, finish or finish_reason(done.stats)), **extras(done)}


def usage_chunk(ids: ReplyIds, done: DoneEvent) -> dict[str, object]:
    """stream_options.include_usage: one more chunk, with no choices and the usage."""
    return {**ids.head("chat.completion.chunk"), "choices": [], "usage": usage(done.stats)}


def sse(data: dict[str, object] | str) -> bytes:
    if not isinstance(data, str):
        data = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


Piece = Callable[[int], bytes]  # a token id's bytes in the model's vocabulary


def chat_logprobs(events: Sequence[TokenEvent], piece: Piece) -> dict[str, object] | None:
    """OpenAI's chat `logprobs` object for these tokens (None when none were asked for)."""
    content = [_token_entry(e.token_id, e.logprob, piece) for e in events if e.logprob]
    return {"content": content} if content else None


def _token_entry(token: int, logprob: TokenLogprob, piece: Piece) -> dict[str, object]:
    return {
        **_token(token, logprob.logprob, piece),
        "top_logprobs": [_token(t, lp, piece) for t, lp in logprob.top],
    }


def _token(token: int, logprob: float, piece: Piece) -> dict[str, object]:
    data = piece(token)
    return {"token": data.decode(errors="replace"), "logprob": logprob, "bytes": list(data)}
