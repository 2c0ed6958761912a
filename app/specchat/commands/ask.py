"""`specchat ask`: one prompt, one reply, headless. Streams text, or prints one JSON object."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator

from specchat.commands.model_args import add_model_args, pair_request
from specchat.config.prompt_cache import open_prompt_cache
from specchat.engine.types import (
    DoneEvent,
    Event,
    Message,
    NoticeEvent,
    Stats,
    TokenEvent,
)
from specchat.errors import RpcError, SpecchatError
from specchat.pair_request import load_pair, resolve_model_request
from specchat.stats_format import ask_line


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ask",
        help="answer one prompt and exit (no UI)",
        description="Answer one prompt with speculative decoding and exit.",
    )
    add_model_args(p)
    p.add_argument("--system", metavar="TEXT", help="system prompt")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object with text, token ids, stats"
    )
    p.add_argument("--quiet", action="store_true", help="no stats line on stderr")
    p.add_argument(
        "--prompt-cache",
        action="store_true",
        help="restore a saved state of a prompt that begins the same way, and save this one "
        "(config.toml [prompt_cache]; see docs/prompt-cache.md)",
    )
    p.add_argument("prompt", metavar="PROMPT", help="the prompt ('-' reads standard input)")
    p.set_defaults(handler=run)


def stats_json(stats: Stats) -> dict[str, object]:
    return stats.to_ordered_dict()


def _keeping_partial_reply(
    events: Iterator[Event], args: argparse.Namespace, got: list[TokenEvent]
) -> Iterator[Event]:
    """The reply's events; when the reply fails midway (an RPC server stops answering, a cache
    rollback is refused), what was generated is kept (the text stays on stdout; --json prints it
    with the error) before the one-line error."""
    try:
        yield from events
    except SpecchatError as exc:
        if not got and not isinstance(exc, RpcError):
            raise  # failed before the reply began: the one-line error alone
        if args.json:
            text = "".join(e.text for e in got)
            ids = [e.token_id for e in got if e.token_id >= 0]
            print(json.dumps({"text": text, "token_ids": ids, "error": exc.message},
                             ensure_ascii=False))
        elif got:
            sys.stdout.write("\n")
        sys.stdout.flush()
        raise


def run(args: argparse.Namespace) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        raise SpecchatError("the prompt is empty")
    request = resolve_model_request(pair_request(args))
    cache = open_prompt_cache(asked=True) if args.prompt_cache else None
    engine = load_pair(request, prompt_cache=cache)
    try:
        if not args.quiet:
            for notice in engine.info.notices:
                print(f"specchat: {notice}", file=sys.stderr)
        messages = [Message("system", args.system)] if args.system else []
        messages.append(Message("user", prompt))
        done: DoneEvent | None = None
        streaming = False
        late: list[str] = []  # notices that arrive mid-reply wait for its end (same terminal)
        got: list[TokenEvent] = []  # what a failure midway leaves of the reply
        for event in _keeping_partial_reply(engine.chat(messages, request.generation), args, got):
            if isinstance(event, TokenEvent):
                got.append(event)
            if isinstance(event, TokenEvent) and not args.json:
                sys.stdout.write(event.text)
                sys.stdout.flush()
                streaming = True
            elif isinstance(event, NoticeEvent) and not args.quiet:
                if streaming:
                    late.append(event.message)
                else:
                    print(f"specchat: {event.message}", file=sys.stderr)
            elif isinstance(event, DoneEvent):
                done = event
    finally:
        engine.close()
        if cache is not None:
            cache.close()  # the state's file is written before the process ends
    assert done is not None
    if args.json:
        print(
            json.dumps(
                {
                    "text": done.text,
                    "token_ids": list(done.token_ids),
                    "stats": stats_json(done.stats),
                },
                ensure_ascii=False,
            )
        )
    else:
        sys.stdout.write("\n")
        sys.stdout.flush()
        for message in late:
            print(f"specchat: {message}", file=sys.stderr)
        if not args.quiet:
            print(ask_line(done.stats), file=sys.stderr)
    return 0
