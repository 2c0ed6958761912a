"""`specchat chat`: the Textual chat app (also what `specchat` alone opens)."""

from __future__ import annotations

import argparse

from specchat.commands.model_args import add_model_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="open the chat app (the default command)",
        description="Chat in the terminal, with live speed and draft acceptance.",
    )
    add_model_args(parser)
    parser.set_defaults(handler=run)


def check_args(args: argparse.Namespace) -> None:
    """Bad flags or an unknown pair end here as one line (exit 2), before the app opens.

    Loading (and downloading) the models happens inside the app, on the engine thread."""
    from specchat.pair_request import generation_settings, resolve_model_request

    generation_settings(args)
    if getattr(args, "target", None) is not None:
        resolve_model_request(args)  # explicit paths: no I/O, only flag checks
    else:
        from specchat.config import load_registry

        load_registry(getattr(args, "config", None)).get(getattr(args, "pair", None))


def run(args: argparse.Namespace) -> int:
    from specchat.store import ChatStore
    from specchat.tui import SpecchatApp
    from specchat.tui.keys import load_keymap
    from specchat.tui.loader import CliLoader

    check_args(args)
    keymap, warnings = load_keymap()
    store = ChatStore.open_default()
    try:
        SpecchatApp(store, CliLoader(args), keymap, warnings).run()
    finally:
        store.close()
    return 0
