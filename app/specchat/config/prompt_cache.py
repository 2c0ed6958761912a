"""The prompt cache's settings: config.toml's [prompt_cache] table, with documented defaults.

    [prompt_cache]
    enabled = true       # false: every chat switch, restart or other client re-reads its prompt
    memory = "auto"      # bytes or "1.5 GiB"; "auto": a quarter of the RAM free at start
    disk = "4 GiB"       # bytes or "4 GiB"; 0: memory only
    directory = "..."    # default: <specchat's cache folder>/prompt-cache

SPECCHAT_PROMPT_CACHE_DIR overrides `directory`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from specchat.errors import SpecchatError

if TYPE_CHECKING:
    from specchat.engine.llama.prompt_cache import PromptCache

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

DIR_ENV = "SPECCHAT_PROMPT_CACHE_DIR"
DEFAULT_DISK = "4 GiB"
MEMORY_SHARE = 0.25  # of the RAM free at start, for "auto"
UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
         "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """Bytes from 123, "123", "1.5GiB", "512 MB" (ValueError when it is none of those)."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string like \"2 GiB\"")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = SIZE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a size (bytes, or like \"2 GiB\", \"512 MB\")")
    number, unit = match.groups()
    return int(float(number) * UNITS[(unit or "").lower()])


class PromptCacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    enabled: bool = True
    memory: int | str = "auto"
    disk: int | str = DEFAULT_DISK
    directory: Path | None = None

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int | str) -> int | str:
        return value if value == "auto" else parse_size(value)

    @field_validator("disk")
    @classmethod
    def _disk(cls, value: int | str) -> int:
        return parse_size(value)


def config_toml() -> Path:
    """config.toml (the key bindings' file too); SPECCHAT_KEYS_FILE names another."""
    from specchat.config.paths import config_dir

    override = os.environ.get("SPECCHAT_KEYS_FILE")
    return Path(override) if override else config_dir() / "config.toml"


def load_prompt_cache_config(path: Path | None = None) -> PromptCacheConfig:
    """The [prompt_cache] table (defaults when there is no file or no table); a bad table is a
    SpecchatError naming the file and the field."""
    path = path or config_toml()
    if not path.is_file():
        return PromptCacheConfig()
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("prompt_cache", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecchatError(f"{path}: cannot read it ({exc})") from None
    try:
        return PromptCacheConfig.model_validate(table)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "prompt_cache"
        raise SpecchatError(f"{path}: [prompt_cache] {where}: {first['msg']}") from None


def cache_directory(config: PromptCacheConfig) -> Path:
    from specchat.config.paths import cache_dir

    env = os.environ.get(DIR_ENV)
    if env:
        return Path(env).expanduser()
    return config.directory.expanduser() if config.directory else cache_dir() / "prompt-cache"


def memory_budget(config: PromptCacheConfig) -> int:
    if config.memory != "auto":
        return int(config.memory)
    from specchat.engine.llama.devices import system_memory

    available, _ = system_memory()
    return int(available * MEMORY_SHARE)


def open_prompt_cache(
    config: PromptCacheConfig | None = None, *, asked: bool = False
) -> PromptCache | None:
    """The front ends' prompt cache, from config.toml: None when it is turned off there, unless
    the command line asked for it (`ask --prompt-cache`)."""
    from specchat.engine.llama.prompt_cache import CacheBudget, PromptCache

    config = config or load_prompt_cache_config()
    if not (config.enabled or asked):
        return None
    return PromptCache(
        CacheBudget(memory_budget(config), int(config.disk), cache_directory(config))
    )
