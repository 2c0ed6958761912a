"""Load the pair registry: the packaged models.toml, then the user's file (or --config) on top."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from specchat.config.paths import packaged_models_toml, user_models_toml
from specchat.config.schema import SOURCE_KEYS, PairConfig
from specchat.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_ALIAS = "default"
TOP_KEYS = {"default", "pairs"}


@dataclass(frozen=True)
class Registry:
    pairs: dict[str, PairConfig]
    default_pair: str
    files: tuple[Path, ...] = field(default_factory=tuple)  # the files merged, in order

    def get(self, name: str | None) -> PairConfig:
        """A pair by name; None or "default" gives the default pair."""
        key = (
            self.default_pair if name in (None, DEFAULT_ALIAS) and name not in self.pairs else name
        )
        if key not in self.pairs:
            known = ", ".join(sorted(self.pairs)) or "none"
            raise ConfigError(f"unknown model pair {name!r}; known pairs: {known}")
        return self.pairs[str(key)]


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level key {sorted(unknown)[0]!r} (allowed: default, pairs)"
        )
    if not isinstance(data.get("pairs", {}), dict):
        raise ConfigError(f"{path}: 'pairs' must be a table of [pairs.NAME] tables")
    if "default" in data and not isinstance(data["default"], str):
        raise ConfigError(f"{path}: 'default' must be the name of a pair")
    for name, pair in data.get("pairs", {}).items():
        if not isinstance(pair, dict):
            raise ConfigError(f"{path}: pair {name!r}: must be a table")
    return data


def merge_pair(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge one pair; a model table that names a source replaces the base's source."""
    merged = dict(base)
    for key, value in over.items():
        old = merged.get(key)
        if key in ("target", "draft") and isinstance(old, dict) and isinstance(value, dict):
            if any(k in value for k in SOURCE_KEYS):
                old = {
                    k: v
                    for k, v in old.items()
                    if k not in (*SOURCE_KEYS, "file", "revision", "filename", "sha256", "size_mb")
                }
            merged[key] = {**old, **value}
        else:
            merged[key] = value
    return merged


def _field_origin(loc: tuple[Any, ...], layers: list[tuple[Path, dict[str, Any]]]) -> Path:
    """The last file whose pair table holds the failing field (else the last that has the pair)."""
    for path, pair in reversed(layers):
        node: Any = pair
        for part in loc:
            in_dict = isinstance(node, dict) and part in node
            if in_dict or (isinstance(node, list) and isinstance(part, int) and part < len(node)):
                node = node[part]
            else:
                break
        else:
            return path
    return layers[-1][0]


def _validate(name: str, layers: list[tuple[Path, dict[str, Any]]]) -> PairConfig:
    raw: dict[str, Any] = {}
    for _, pair in layers:
        raw = merge_pair(raw, pair)
    try:
        pair = PairConfig.model_validate({**raw, "name": name})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in ("str", "int")))
        origin = _field_origin(loc, layers)
        where = f" field {'.'.join(str(p) for p in loc)!r}:" if loc else ""
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{origin}: pair {name!r}:{where} {msg}") from None
    return _resolve_paths(pair, layers)


def _resolve_paths(pair: PairConfig, layers: list[tuple[Path, dict[str, Any]]]) -> PairConfig:
    """A relative `path` is relative to the file that set it; `~` is expanded."""
    updates: dict[str, Any] = {}
    for role in ("target", "draft"):
        model = getattr(pair, role)
        if model is None or model.path is None:
            continue
        path = model.path.expanduser()
        if not path.is_absolute():
            path = _field_origin((role, "path"), layers).parent / path
        updates[role] = model.model_copy(update={"path": path})
    return pair.model_copy(update=updates) if updates else pair


def load_registry(config_path: str | os.PathLike[str] | None = None) -> Registry:
    """The packaged pairs, overridden and extended by the user file (or `config_path` instead)."""
    if config_path is None:
        config_path = os.environ.get("SPECCHAT_CONFIG") or None
    files = [packaged_models_toml()]
    if config_path is not None:
        files.append(Path(config_path).expanduser())
    elif user_models_toml().is_file():
        files.append(user_models_toml())
    layers_by_pair: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    default: tuple[Path, str] | None = None
    for path in files:
        data = read_toml(path)
        for name, pair in data.get("pairs", {}).items():
            layers_by_pair.setdefault(name, []).append((path, pair))
        if "default" in data:
            default = (path, data["default"])
    pairs = {name: _validate(name, layers) for name, layers in layers_by_pair.items()}
    if not pairs:
        raise ConfigError(f"{files[-1]}: no pairs defined")
    if default is None:
        default_name = DEFAULT_ALIAS if DEFAULT_ALIAS in pairs else sorted(pairs)[0]
    else:
        default_name = default[1]
        if default_name not in pairs:
            raise ConfigError(
                f"{default[0]}: 'default' names unknown pair {default_name!r}; "
                f"known pairs: {', '.join(sorted(pairs))}"
            )
    return Registry(pairs=pairs, default_pair=default_name, files=tuple(files))
