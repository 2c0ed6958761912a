"""`specchat cache list | size | clear`: the prompt cache's files (engine/llama/prompt_cache.py)."""

from __future__ import annotations

import argparse
import time

from specchat.config.prompt_cache import (
    cache_directory,
    load_prompt_cache_config,
    memory_budget,
)
from specchat.engine.llama.prompt_cache import clear_files, list_files

GIB = 2**30
MIB = 2**20


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cache", help="list, size or clear the prompt cache (saved model states of chats)"
    )
    sub = parser.add_subparsers(dest="cache_command", metavar="{list,size,clear}")
    sub.required = True
    sub.add_parser("list", help="the saved states, newest first").set_defaults(handler=cmd_list)
    sub.add_parser("size", help="bytes on disk and the budgets").set_defaults(handler=cmd_size)
    sub.add_parser("clear", help="remove every saved state").set_defaults(handler=cmd_clear)


def human(n: float) -> str:
    return f"{n / MIB:.1f} MiB" if n < GIB else f"{n / GIB:.2f} GiB"


def cmd_list(args: argparse.Namespace) -> int:
    directory = cache_directory(load_prompt_cache_config())
    entries = list_files(directory) if directory.is_dir() else []
    if not entries:
        print(f"the prompt cache is empty ({directory})")
        return 0
    print(f"{'saved':<17}  {'role':<6}  {'tokens':>7}  {'size':>10}  model")
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.mtime))
        print(f"{when:<17}  {e.role:<6}  {e.n_tokens:>7}  {human(e.size):>10}  {e.model}")
    return 0


def cmd_size(args: argparse.Namespace) -> int:
    config = load_prompt_cache_config()
    directory = cache_directory(config)
    entries = list_files(directory) if directory.is_dir() else []
    used = sum(e.size for e in entries)
    state = "on" if config.enabled else "off (config.toml: [prompt_cache] enabled = false)"
    print(f"prompt cache: {state}")
    print(f"directory: {directory}")
    print(f"on disk: {human(used)} in {len(entries)} files (budget {human(int(config.disk))})")
    print(f"memory budget per process: {human(memory_budget(config))}")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    directory = cache_directory(load_prompt_cache_config())
    count, size = clear_files(directory) if directory.is_dir() else (0, 0)
    print(f"removed {count} files ({human(size)}) from {directory}")
    return 0
