"""Per-chat system prompt and generation settings (blank = the default)."""

from __future__ import annotations

from dataclasses import fields
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, TextArea

from specchat.engine.limits import violation
from specchat.store.records import ChatSettings

# name -> (label, type); the bounds are the engine's (specchat.engine.limits)
NUMERIC: dict[str, tuple[str, type]] = {
    "temperature": ("temperature (0 = greedy)", float),
    "top_k": ("top-k (0 = off)", int),
    "top_p": ("top-p (1 = off)", float),
    "min_p": ("min-p (0 = off)", float),
    "seed": ("seed", int),
    "max_tokens": ("max tokens", int),
    "draft_max": ("draft max (tokens per draft)", int),
    "p_min": ("p-min (draft stops below)", float),
}
ADAPTIVE = [("default", "default"), ("on", "on"), ("off", "off")]


def parse_settings(system_prompt: str, raw: dict[str, str], adaptive: str) -> ChatSettings:
    """Validated settings from the form's text; ValueError names the first bad field."""
    values: dict[str, object] = {"system_prompt": system_prompt.strip()}
    for name, (label, kind) in NUMERIC.items():
        text = raw.get(name, "").strip()
        if not text:
            values[name] = None
            continue
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"{label}: {text!r} is not a number") from None
        why = violation(name, value)
        if why is not None:
            raise ValueError(f"{label}: {why}")
        values[name] = value
    values["adaptive"] = {"on": True, "off": False}.get(adaptive)
    known = {f.name for f in fields(ChatSettings)}
    return ChatSettings(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]


class ChatSettingsScreen(ModalScreen[ChatSettings | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Cancel", show=False),
        Binding("ctrl+s", "save", "Save", show=False),
    ]

    def __init__(self, settings: ChatSettings, defaults: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.settings, self.defaults = settings, defaults

    def compose(self) -> ComposeResult:
        s = self.settings
        with Vertical(classes="dialog wide"):
            yield Label("Chat settings (blank = default)", classes="dialog-title")
            with VerticalScroll(id="settings-form"):
                yield Label("System prompt")
                yield TextArea(s.system_prompt, id="system-prompt", soft_wrap=True)
                for name, (label, _) in NUMERIC.items():
                    value = getattr(s, name)
                    with Horizontal(classes="setting-row"):
                        yield Label(label, classes="setting-label")
                        yield Input("" if value is None else str(value), id=f"set-{name}")
                with Horizontal(classes="setting-row"):
                    yield Label("adaptive draft length", classes="setting-label")
                    adaptive = "default" if s.adaptive is None else ("on" if s.adaptive else "off")
                    yield Select(ADAPTIVE, value=adaptive, allow_blank=False, id="set-adaptive")
            yield Label(self.defaults, classes="dialog-hint")
            yield Label("", id="settings-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)

    def action_save(self) -> None:
        raw = {name: self.query_one(f"#set-{name}", Input).value for name in NUMERIC}
        adaptive = str(self.query_one("#set-adaptive", Select).value)
        try:
            system = self.query_one("#system-prompt", TextArea).text
            settings = parse_settings(system, raw, adaptive)
        except ValueError as exc:
            self.query_one("#settings-error", Label).update(f"✖ {exc}")
            return
        self.dismiss(settings)
