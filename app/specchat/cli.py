"""`specchat` command line: parses arguments and dispatches to a command module.

Every user-fixable problem ends as one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from specchat import __version__
from specchat.errors import SpecchatError

# Each module exposes register(subparsers) and sets a `handler(args) -> int` default.
COMMAND_MODULES = ("ask", "chat", "serve", "models", "cache", "doctor", "bench")


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; we print the error alone, as one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = OneLineParser(
        prog="specchat",
        description="Terminal chat for local LLMs, made faster with speculative decoding.",
    )
    parser.add_argument("--version", action="version", version=f"specchat {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=os.environ.get("SPECCHAT_CONFIG"),
        help="models.toml to use instead of the user's (also: SPECCHAT_CONFIG)",
    )
    subparsers = parser.add_subparsers(dest="command", parser_class=OneLineParser)
    for name in COMMAND_MODULES:
        module_name = f"specchat.commands.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a command not shipped in this build
            if exc.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not {"-h", "--help", "--version"} & set(argv):
        at = _command_index(argv)
        if at == len(argv) or argv[at] not in COMMAND_MODULES:
            argv.insert(at, "chat")  # `specchat [--pair NAME ...]` opens the chat
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except SpecchatError as exc:
        from specchat.commands.model_args import flag_for

        print(f"specchat: error: {exc.spelled(flag_for)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("specchat: interrupted", file=sys.stderr)
        return 130


def _command_index(argv: Sequence[str]) -> int:
    """Where the command name is (or belongs): after the global options."""
    i = 0
    while i < len(argv):
        if argv[i] == "--config":
            i += 2
        elif argv[i].startswith("--config="):
            i += 1
        else:
            return i
    return len(argv)
