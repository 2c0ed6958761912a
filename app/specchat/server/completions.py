"""Text completion and fill-in-the-middle: OpenAI's POST /v1/completions, llama.cpp's server's
POST /completion and POST /infill. The prompt is raw text (or token ids), not a chat; a
`suffix` (OpenAI) or `input_prefix` / `input_suffix` / `input_extra` (llama.cpp) makes it a
fill-in-the-middle prompt in the vocabulary's own FIM tokens (Qwen2.5-Coder's repository
format for `input_extra`), as llama.cpp's server builds it."""

from __future__ import annotations

import dataclasses
import enum
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import llama_cpp as lc
from pydantic import ValidationError

from specchat.engine.llama.model import LlamaModel
from specchat.engine.types import DoneEvent, GenerationSettings, TokenEvent
from specchat.server import responses as fmt
from specchat.server.errors import bad_request
from specchat.server.schema import (
    SamplingRequest,
    first_error,
    refuse_unsupported,
    settings_for,
)
from specchat.server.structured import grammar_for

MAX_LEGACY_LOGPROBS = 5  # OpenAI's completions API
REPO_NAME = "myproject"  # llama.cpp's server's name for the repository in FIM prompts


class Api(enum.Enum):
    OPENAI = "openai"  # /v1/completions
    LLAMA = "llama"  # /completion
    INFILL = "infill"  # /infill (llama.cpp's answer shape)


class TextFields(SamplingRequest):
    prompt: Any = None  # text, [text], or token ids
    suffix: str | None = None  # OpenAI: text after the gap
    logprobs: int | None = None  # OpenAI completions: the top n per token
    n_predict: int | None = None  # llama.cpp: -1 = the server's limit; 0 = warm up only
    input_prefix: str | None = None
    input_suffix: str | None = None
    input_extra: list[Any] | None = None


@dataclass(frozen=True)
class Extra:
    filename: str
    text: str


@dataclass(frozen=True)
class TextRequest:
    api: Api
    prompt: str | tuple[int, ...]
    fim: tuple[str, str, tuple[Extra, ...]] | None  # (prefix, suffix, extra files)
    settings: GenerationSettings
    stream: bool
    include_usage: bool
    warmup: bool  # llama.cpp's n_predict 0: read the prompt into the cache, answer nothing


def parse_text_request(
    data: dict[str, Any], defaults: GenerationSettings, api: Api
) -> TextRequest:
    refuse_unsupported(data)
    try:
        fields = TextFields.model_validate(data)
    except ValidationError as exc:
        raise first_error(exc) from None
    if fields.n != 1:
        raise bad_request(f"n must be 1: one choice per request (got {fields.n})", param="n")
    warmup = fields.n_predict == 0
    if fields.n_predict is not None and fields.n_predict > 0:
        fields = fields.model_copy(update={"max_tokens": fields.n_predict})
    elif fields.n_predict is not None and fields.n_predict < -1:
        raise bad_request("n_predict must be -1, 0 or more", param="n_predict")
    settings = settings_for(fields, defaults, grammar_for(data))
    if warmup:
        settings = dataclasses.replace(settings, max_tokens=1)
    return TextRequest(
        api=api,
        prompt=_prompt(fields.prompt, required=api is not Api.INFILL),
        fim=_fim(fields, api),
        settings=dataclasses.replace(settings, logprobs=_logprobs(fields.logprobs)),
        stream=fields.stream,
        include_usage=bool(fields.stream_options and fields.stream_options.include_usage),
        warmup=warmup,
    )


def _prompt(prompt: Any, required: bool) -> str | tuple[int, ...]:
    if prompt is None and not required:
        return ""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt):
        return tuple(prompt)
    raise bad_request(
        "prompt must be a string or a list of token ids (one prompt per request)", "prompt"
    )


def _fim(fields: TextFields, api: Api) -> tuple[str, str, tuple[Extra, ...]] | None:
    if api is Api.OPENAI:
        return None if fields.suffix is None else ("", fields.suffix, ())
    if api is Api.LLAMA:
        if fields.input_prefix is not None or fields.input_suffix is not None:
            raise bad_request("input_prefix and input_suffix are /infill's", "input_prefix")
        return None
    return (fields.input_prefix or "", fields.input_suffix or "", _extras(fields.input_extra))


def _extras(chunks: list[Any] | None) -> tuple[Extra, ...]:
    out = []
    for i, chunk in enumerate(chunks or ()):
        if not isinstance(chunk, dict) or not isinstance(chunk.get("text"), str) or not isinstance(
            chunk.get("filename", ""), str
        ):
            raise bad_request(
                f"input_extra[{i}] must be {{'filename': str, 'text': str}}", "input_extra"
            )
        out.append(Extra(chunk.get("filename", ""), chunk["text"]))
    return tuple(out)


def _logprobs(n: int | None) -> int | None:
    if n is None:
        return None
    if not 0 <= n <= MAX_LEGACY_LOGPROBS:
        raise bad_request(f"logprobs must be in [0, {MAX_LEGACY_LOGPROBS}] (got {n})", "logprobs")
    return n


# ---- the prompt's tokens -----------------------------------------------------------------------


def prompt_tokens(target: LlamaModel, request: TextRequest) -> list[int]:
    """The tokens to continue; a FIM prompt needs the vocabulary's FIM tokens (a 400 names the
    model when it has none)."""
    if request.fim is None:
        if isinstance(request.prompt, tuple):
            return _checked_ids(target, request.prompt)
        tokens = target.tokenize(request.prompt, add_special=True, parse_special=False)
        if not tokens:
            raise bad_request("prompt is empty", param="prompt")
        return tokens
    return _fim_tokens(target, request)


def _checked_ids(target: LlamaModel, ids: Sequence[int]) -> list[int]:
    for i, token in enumerate(ids):
        if not 0 <= token < target.n_vocab:
            raise bad_request(f"prompt[{i}] is not a token id of this model", param="prompt")
    return list(ids)


def _fim_tokens(target: LlamaModel, request: TextRequest) -> list[int]:
    """llama.cpp's server's layout (format_infill): [repo and files] PRE prefix prompt SUF
    suffix MID."""
    assert request.fim is not None
    prefix, suffix, extras = request.fim
    vocab = target.vocab
    pre, suf, mid = (lc.llama_vocab_fim_pre(vocab), lc.llama_vocab_fim_suf(vocab),
                     lc.llama_vocab_fim_mid(vocab))
    param = "suffix" if request.api is Api.OPENAI else "input_suffix"
    if min(pre, suf, mid) < 0:
        raise bad_request(
            f"{target.path.name} has no fill-in-the-middle tokens, so it cannot fill a gap "
            "(use a code model such as Qwen2.5-Coder)",
            param=param,
            code="fim_not_supported",
        )

    def text(value: str) -> list[int]:
        return target.tokenize(value, add_special=False, parse_special=False)

    if isinstance(request.prompt, tuple):
        middle = _checked_ids(target, request.prompt)
    else:
        middle = text(request.prompt)
    tokens = [*_repo_tokens(target, extras, text), pre, *text(prefix), *middle]
    tokens += [suf, *text(suffix), mid]
    if target.add_bos and target.bos >= 0:
        tokens.insert(0, target.bos)
    return tokens


def _repo_tokens(
    target: LlamaModel, extras: Sequence[Extra], text: Callable[[str], list[int]]
) -> list[int]:
    """Other files as context: Qwen2.5-Coder's repository format (<|repo_name|>, then
    <|file_sep|> name, text per file), which needs those tokens in the vocabulary."""
    if not extras:
        return []
    rep, sep = lc.llama_vocab_fim_rep(target.vocab), lc.llama_vocab_fim_sep(target.vocab)
    if rep < 0 or sep < 0:
        raise bad_request(
            f"{target.path.name} has no repository tokens for other files' context",
            param="input_extra",
        )
    tokens = [rep, *text(f"{REPO_NAME}\n")]
    for extra in extras:
        tokens += [sep, *text(f"{extra.filename}\n{extra.text}")]
    return [*tokens, sep]


# ---- the answers -------------------------------------------------------------------------------


def reply_ids(model: str) -> fmt.ReplyIds:
    return fmt.ReplyIds(model, id=f"cmpl-{uuid.uuid4().hex}")


def openai_body(
    ids: fmt.ReplyIds, done: DoneEvent, events: Sequence[TokenEvent], piece: fmt.Piece
) -> dict[str, object]:
    return {
        **ids.head("text_completion"),
        "choices": [
            {
                "text": done.text,
                "index": 0,
                "logprobs": legacy_logprobs(events, piece, 0),
                "finish_reason": fmt.finish_reason(done.stats),
            }
        ],
        "usage": fmt.usage(done.stats),
        **fmt.extras(done),
    }


def openai_chunk(
    ids: fmt.ReplyIds,
    text: str,
    events: Sequence[TokenEvent],
    piece: fmt.Piece,
    offset: int,
    finish: str | None = None,
) -> dict[str, object]:
    choice = {
        "text": text,
        "index": 0,
        "logprobs": legacy_logprobs(events, piece, offset),
        "finish_reason": finish,
    }
    return {**ids.head("text_completion"), "choices": [choice]}


def legacy_logprobs(
    events: Sequence[TokenEvent], piece: fmt.Piece, offset: int
) -> dict[str, object] | None:
    """OpenAI's completions `logprobs`: tokens, their log-probabilities, the top ones (a
    token -> log-probability map each), each token's offset in the text."""
    scored = [e for e in events if e.logprob is not None]
    if not scored:
        return None
    tokens = [piece(e.token_id).decode(errors="replace") for e in scored]
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [e.logprob.logprob for e in scored if e.logprob],
        "top_logprobs": [
            {piece(t).decode(errors="replace"): lp for t, lp in e.logprob.top}
            for e in scored
            if e.logprob
        ],
        "text_offset": offsets,
    }


def llama_body(
    request: TextRequest, model: str, done: DoneEvent, prompt_n: int
) -> dict[str, object]:
    """llama.cpp's server's final /completion and /infill object."""
    stats = done.stats
    reason = stats.finish_reason
    stop_type = {"stop": "eos", "length": "limit", "context": "limit"}.get(reason, "none")
    return {
        "content": "" if request.warmup else done.text,
        "tokens": [] if request.warmup else list(done.token_ids),
        "id_slot": 0,
        "stop": True,
        "model": model,
        "tokens_predicted": 0 if request.warmup else stats.generated_tokens,
        "tokens_evaluated": prompt_n,
        "stop_type": stop_type,
        "truncated": False,
        "timings": fmt.timings(stats),
        "specchat": fmt.specchat_stats(stats),
        "created": int(time.time()),
    }


def llama_chunk(text: str, events: Sequence[TokenEvent]) -> dict[str, object]:
    return {
        "content": text,
        "tokens": [e.token_id for e in events if e.token_id >= 0],
        "stop": False,
        "id_slot": 0,
        "index": 0,
    }
