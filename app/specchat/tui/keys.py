"""Key bindings: every action has a binding id; users remap them in config.toml's [keys].

# ~/.config/specchat/config.toml (platformdirs' user config dir)
[keys]
regenerate = "ctrl+r"
toggle_origins = "f6,ctrl+o"
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from textual.binding import Binding

KEYS_FILE_ENV = "SPECCHAT_KEYS_FILE"


@dataclass(frozen=True)
class Action:
    id: str
    keys: str
    description: str
    help: str
    show: bool = True


ACTIONS: tuple[Action, ...] = (
    Action("cancel", "escape", "Stop", "Stop the reply (the partial text stays, marked cancelled)"),
    Action("new_chat", "ctrl+n", "New chat", "Start a new chat"),
    Action("regenerate", "ctrl+r", "Regenerate", "Regenerate the last reply"),
    Action("edit_last", "ctrl+g", "Edit last", "Edit and resend the last prompt"),
    Action("continue_reply", "ctrl+l", "Continue", "Continue a reply stopped at max tokens", False),
    Action("prev_variant", "alt+left", "Older reply", "Show the reply regenerate replaced", False),
    Action("next_variant", "alt+right", "Newer reply", "Show the newer regenerated reply", False),
    Action("copy_last", "ctrl+t", "Copy reply", "Copy the last reply to the clipboard", False),
    Action("toggle_origins", "ctrl+o", "Origins", "Colour tokens: copied, drafted, target"),
    Action("toggle_sidebar", "ctrl+b", "Sidebar", "Show or hide the chat list", False),
    Action("search_chats", "ctrl+f", "Search", "Search chats by title and words", False),
    Action("rename_chat", "f2", "Rename", "Rename this chat"),
    Action("delete_chat", "f8", "Delete", "Delete this chat"),
    Action("export_chat", "ctrl+s", "Export", "Export this chat to Markdown", False),
    Action("chat_settings", "f3", "Settings", "System prompt and generation settings of this chat"),
    Action("pick_pair", "f4", "Pair", "Choose the model pair"),
    Action("open_model", "f9", "Open GGUF", "Open GGUF files as target and draft (checked first)"),
    Action("chat_summary", "f5", "Summary", "Speed and acceptance summary of this chat", False),
)


def bindings() -> list[Binding]:
    return [Binding(a.keys, a.id, a.description, show=a.show, id=a.id) for a in ACTIONS]


def keys_file() -> Path:
    override = os.environ.get(KEYS_FILE_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir("specchat", appauthor=False)) / "config.toml"


def load_keymap(path: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """The [keys] table as {binding id: keys}, and warnings to show (never raises)."""
    path = path or keys_file()
    if not path.is_file():
        return {}, []
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("keys", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"{path}: ignored ({exc})"]
    if not isinstance(table, dict):
        return {}, [f"{path}: [keys] must be a table"]
    known = {a.id for a in ACTIONS} | {"prompt.send", "prompt.newline", "message.copy"}
    known |= {"message.copy_code"}
    keymap: dict[str, str] = {}
    warnings: list[str] = []
    for binding_id, keys in table.items():
        if binding_id not in known:
            warnings.append(f"{path}: unknown key binding id {binding_id!r}")
        elif not isinstance(keys, str) or not keys.strip():
            warnings.append(f'{path}: keys for {binding_id!r} must be a string like "ctrl+r"')
        else:
            keymap[binding_id] = keys.replace(" ", "")
    return keymap, warnings
