"""Open any GGUF pair: target and draft paths (or a recent pair), `models check`, then load."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from specchat.errors import SpecchatError
from specchat.pair_check import PairReport
from specchat.tui.loader import EngineLoader, ModelFiles


def files_from(target: str, draft: str, cross_vocab: bool = False) -> ModelFiles:
    """The typed paths; raises SpecchatError with the CLI's wording when one is missing."""
    if not target.strip():
        raise SpecchatError("give a target GGUF path (the draft is optional)")
    target_path = Path(target.strip()).expanduser()
    draft_path = Path(draft.strip()).expanduser() if draft.strip() else None
    for path in (target_path, draft_path):
        if path is not None and not path.is_file():
            raise SpecchatError(f"model file not found: {path}")
    return ModelFiles(target_path, draft_path, cross_vocab and draft_path is not None)


class OpenModelScreen(ModalScreen[ModelFiles | None]):
    """Check (Enter or the button) runs `models check` on the files; Load opens them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Cancel", show=False)
    ]
    DEFAULT_CSS = """
    OpenModelScreen #check-scroll { height: auto; max-height: 14; }
    OpenModelScreen #recent-list { height: auto; max-height: 6; }
    """

    def __init__(self, loader: EngineLoader) -> None:
        super().__init__(classes="dialog-screen")
        self.loader = loader
        self.checked: ModelFiles | None = None  # the files the report below is about
        self.recent = loader.recent()

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide", id="open-model"):
            yield Label("Open GGUF files (Enter checks them · Esc cancels)", classes="dialog-title")
            yield Input(placeholder="target GGUF path", id="target-path")
            yield Input(placeholder="draft GGUF path (optional)", id="draft-path")
            yield Checkbox(
                "cross-vocabulary drafting (a draft with another vocabulary; slower)",
                id="cross-vocab",
            )
            if self.recent:
                yield Label("Recently opened", classes="dialog-subtitle")
                yield OptionList(
                    *(
                        Option(f.label.removeprefix("model "), id=str(i))
                        for i, f in enumerate(self.recent)
                    ),
                    id="recent-list",
                )
            with VerticalScroll(id="check-scroll"):
                yield Static("", id="check-report")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Check", id="check")
                yield Button("Load", variant="primary", id="load", disabled=True)
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#target-path", Input).focus()

    @on(OptionList.OptionSelected, "#recent-list")
    def _recent_chosen(self, event: OptionList.OptionSelected) -> None:
        files = self.recent[int(event.option.id or 0)]
        self.query_one("#target-path", Input).value = str(files.target)
        self.query_one("#draft-path", Input).value = str(files.draft or "")
        self.query_one("#cross-vocab", Checkbox).value = files.cross_vocab
        self.start_check()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.start_check()

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _changed(self) -> None:
        self.checked = None
        self.query_one("#load", Button).disabled = True

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "check":
            self.start_check()
        elif event.button.id == "load" and self.checked is not None:
            self.dismiss(self.checked)
        elif event.button.id == "cancel":
            self.dismiss(None)

    def start_check(self) -> None:
        try:
            files = files_from(
                self.query_one("#target-path", Input).value,
                self.query_one("#draft-path", Input).value,
                self.query_one("#cross-vocab", Checkbox).value,
            )
        except SpecchatError as exc:
            self._show_error(exc.message)
            return
        self.query_one("#check-report", Static).update("checking…")
        self._check(files)

    @work(thread=True, exclusive=True, group="check")
    def _check(self, files: ModelFiles) -> None:
        try:
            report = self.loader.check(files)
        except SpecchatError as exc:
            self.app.call_from_thread(self._show_error, exc.message)
            return
        except Exception as exc:  # an unreadable file must not take the app down
            self.app.call_from_thread(self._show_error, f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._show_report, files, report)

    def _show_error(self, message: str) -> None:
        self.checked = None
        self.query_one("#load", Button).disabled = True
        self.query_one("#check-report", Static).update(f"✖ {message}")

    def _show_report(self, files: ModelFiles, report: PairReport) -> None:
        lines = "\n".join(report.lines)
        if report.error is not None:
            self._show_error(report.error.message)
            self.query_one("#check-report", Static).update(f"{lines}\n✖ {report.error.message}")
            return
        self.checked = files
        self.query_one("#check-report", Static).update(f"{lines}\n  result usable")
        load = self.query_one("#load", Button)
        load.disabled = False
        load.focus()
