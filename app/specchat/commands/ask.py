"""`specchat ask`: one prompt, one reply, headless. Streams text, or prints one JSON object."""

from __future__ import annotations

import argparse
import json
import sys

from specchat.commands.model_args import add_model_args
from specchat.engine.types import (
    DoneEvent,
    Message,
    NoticeEvent,
    Stats,
    TokenEvent,
)
from specchat.resolve import load_pair, resolve_model_request


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
    p.add_argument("prompt", metavar="PROMPT", help="the prompt ('-' reads standard input)")
    p.set_defaults(handler=run)


def stats_json(stats: Stats) -> dict[str, object]:
    return stats.to_ordered_dict()


def stats_line(stats: Stats) -> str:
    line = (
        f"{stats.generated_tokens} tokens, {stats.tokens_per_second:.1f} tok/s, "
        f"TTFT {stats.ttft_ms:.0f} ms, {stats.tokens_per_pass:.2f} tok/pass"
    )
    if stats.drafted:
        line += f", acceptance {stats.acceptance_rate:.0%} ({stats.accepted}/{stats.drafted})"
    return f"[{line}, mode {stats.mode}{' cross-vocab' if stats.cross_vocab else ''}]"


def run(args: argparse.Namespace) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        from specchat.errors import SpecchatError

        raise SpecchatError("the prompt is empty")
    request = resolve_model_request(args)
    engine = load_pair(request)
    try:
        if not args.quiet:
            for notice in engine.info.notices:
                print(f"specchat: {notice}", file=sys.stderr)
        messages = [Message("system", args.system)] if args.system else []
        messages.append(Message("user", prompt))
        done: DoneEvent | None = None
        streaming = False
        late: list[str] = []  # notices that arrive mid-reply wait for its end (same terminal)
        for event in engine.chat(messages, request.generation):
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
            print(stats_line(done.stats), file=sys.stderr)
    return 0
