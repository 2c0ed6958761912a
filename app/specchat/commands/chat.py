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


def run(args: argparse.Namespace) -> int:
    from specchat.store import ChatStore
    from specchat.tui import SpecchatApp
    from specchat.tui.keys import load_keymap
    from specchat.tui.loader import CliLoader

    keymap, warnings = load_keymap()
    store = ChatStore.open_default()
    try:
        SpecchatApp(store, CliLoader(args), keymap, warnings).run()
    finally:
        store.close()
    return 0
