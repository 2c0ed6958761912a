"""`specchat chat`: the Textual chat app (also what `specchat` alone opens)."""

from __future__ import annotations

import argparse

from specchat.commands.model_args import add_model_args, pair_request
from specchat.pair_request import PairRequest


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="open the chat app (the default command)",
        description="Chat in the terminal, with live speed and draft acceptance.",
    )
    add_model_args(parser)
    parser.set_defaults(handler=run)


def checked_request(args: argparse.Namespace) -> PairRequest:
    """The flags as a request; bad flags or an unknown pair end here as one line (exit 2),
    before the app opens. Loading (and downloading) the models happens inside the app, on the
    engine thread."""
    from specchat.pair_request import resolve_model_request

    request = pair_request(args)
    if request.target is not None:
        resolve_model_request(request)  # explicit paths: no I/O, only flag checks
    else:
        from specchat.config import load_registry

        load_registry(request.config).get(request.pair)
    return request


def run(args: argparse.Namespace) -> int:
    from specchat.store import ChatStore
    from specchat.tui import SpecchatApp
    from specchat.tui.keys import load_keymap
    from specchat.tui.loader import CliLoader

    request = checked_request(args)
    keymap, warnings = load_keymap()
    store = ChatStore.open_default()
    loader = CliLoader(request)
    try:
        SpecchatApp(store, loader, keymap, warnings).run()
    finally:
        store.close()
        loader.close()
    return 0
