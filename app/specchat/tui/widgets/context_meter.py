"""The context meter and the chat's speed line, shown above the prompt.

forecast() applies the engine's own rule for fitting a conversation into the context
(specchat.engine.context): a prompt longer than n_ctx minus room for the reply loses its oldest
turns (a user message and the reply after it) until it takes REFILL_SHARE of that budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import ProgressBar, Static

from specchat.engine import REFILL_SHARE, Message, Stats, drop_oldest_turn, prompt_budget
from specchat.stats_format import num

WARN_SHARE = 0.8  # warn when the prompt takes this share of what the context leaves it
SNIPPET = 40


@dataclass(frozen=True)
class ContextForecast:
    used: int  # tokens of the next prompt (without the new message)
    n_ctx: int
    budget: int  # what the prompt may take: n_ctx minus room for the reply
    dropped: tuple[str, ...] = ()  # the messages the next request would leave out, oldest first

    @property
    def warn(self) -> bool:
        return self.used > self.budget * WARN_SHARE


def _snippet(message: Message) -> str:
    text = " ".join(message.content.split())
    return text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"


def forecast(
    messages: Sequence[Message],
    count: Callable[[Sequence[Message]], int],
    n_ctx: int,
    max_tokens: int,
) -> ContextForecast:
    """How full the context is, and which messages would be left out if the chat went on now
    (a next message of a few words): counted with the engine's own tokenizer and template."""
    msgs = list(messages)
    used = count(msgs) if msgs else 0
    budget = prompt_budget(n_ctx, max_tokens)
    dropped: list[Message] = []
    if msgs and used > budget * WARN_SHARE:
        probe = [*msgs, Message("user", "…")]  # the turn about to be written
        size = count(probe)
        if size > budget:
            while size > budget * REFILL_SHARE and (turn := drop_oldest_turn(probe)):
                dropped += turn
                size = count(probe)
    return ContextForecast(used, n_ctx, budget, tuple(_snippet(m) for m in dropped))


def meter_text(f: ContextForecast) -> Content:
    share = f.used / f.n_ctx if f.n_ctx else 0.0
    line = Content(f"context {f.used:,} / {f.n_ctx:,} tokens ({share:.0%})")
    if f.dropped:
        first = f.dropped[0]
        more = f" and {len(f.dropped) - 1} more" if len(f.dropped) > 1 else ""
        return line + Content.styled(
            f" · ⚠ the next reply leaves out the oldest {len(f.dropped)} message(s):"
            f" “{first}”{more}",
            "$text-warning",
        )
    if f.warn:
        left = max(0, f.budget - f.used)
        return line + Content.styled(
            f" · ⚠ ~{left:,} tokens left, then the oldest turns are left out",
            "$text-warning",
        )
    return line


def saved_seconds(stats: Sequence[Stats], baseline: float) -> tuple[float, int]:
    """Seconds speculation saved (negative: cost) over these replies against the target alone
    at baseline tokens/s, and how many replies counted (those with a measured speed)."""
    saved, counted = 0.0, 0
    for s in stats:
        if s.generated_tokens > 1 and s.tokens_per_second > 0:
            saved += s.generated_tokens / baseline - s.generated_tokens / s.tokens_per_second
            counted += 1
    return saved, counted


def speed_text(stats: Sequence[Stats], baseline: float | None, measuring: bool) -> str:
    if baseline is None:
        if measuring:
            return "speculation: measuring the target alone…"
        return "speculation: target-alone speed not measured (no draft, or it failed)"
    saved, counted = saved_seconds(stats, baseline)
    against = f"vs the target alone at {num(baseline)} tok/s (measured this session)"
    if counted == 0:
        return f"speculation: no reply in this chat yet, {against}"
    verb = "saved" if saved >= 0 else "cost"
    replies = "1 reply" if counted == 1 else f"{counted} replies"
    return f"speculation {verb} {abs(saved):.1f} s in this chat ({replies}) {against}"


class ContextMeter(Vertical):
    """Tokens used of n_ctx for this chat, with the drop warning, and the speed line."""

    DEFAULT_CSS = """
    ContextMeter { height: auto; padding: 0 1; }
    ContextMeter #context-row { height: auto; }
    ContextMeter #context-bar { width: 24; height: 1; }
    ContextMeter #context-bar Bar { width: 22; }
    ContextMeter #context-text { width: 1fr; height: auto; }
    ContextMeter #speed-line { height: auto; color: $text-muted; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.forecast: ContextForecast | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="context-row"):
            yield ProgressBar(total=1, show_eta=False, show_percentage=False, id="context-bar")
            yield Static("context –", id="context-text")
        yield Static("", id="speed-line")

    def on_mount(self) -> None:
        self.show(None)
        self.show_speed("")

    def show(self, f: ContextForecast | None) -> None:
        self.forecast = f
        bar = self.query_one("#context-bar", ProgressBar)
        self.query_one("#context-row").display = f is not None  # no chat or no model: no row
        if f is None:
            return
        bar.update(total=max(1, f.n_ctx), progress=min(f.used, f.n_ctx))
        self.query_one("#context-text", Static).update(meter_text(f))

    def show_speed(self, text: str) -> None:
        line = self.query_one("#speed-line", Static)
        line.update(text)
        line.display = bool(text)  # no line (and no blank row) until a baseline is wanted
