"""Benchmark output: a rich table for people, a PNG plot (optional `plot` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from specchat.bench.results import ModeSummary, Physics
from specchat.bench.stats import Spread
from specchat.errors import SpecchatError

PLOT_HINT = "--plot needs matplotlib: pip install 'specchat[plot]' (or pip install matplotlib)"


def _spread(s: Spread | None, fmt: str = "{:.1f}", unit: str = "") -> str:
    """median (min–max)"""
    if s is None:
        return "—"
    if s.n == 1 or s.low == s.high:
        return fmt.format(s.median) + unit
    return f"{fmt.format(s.median)}{unit} ({fmt.format(s.low)}–{fmt.format(s.high)})"


def _opt(value: float | None, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def build_table(summaries: Sequence[ModeSummary], title: str = "") -> Table:
    table = Table(title=title or None, title_justify="left")
    table.add_column("mode", no_wrap=True)
    for name in ("tok/s", "speedup", "predicted", "accept", "α", "tok/pass", "TTFT ms",
                 "identical", "RSS MiB"):
        table.add_column(name, justify="right", no_wrap=True)
    for s in summaries:
        identity = "—" if not s.compared else f"{s.identical}/{s.compared}"
        if s.compared and s.identical < s.compared:
            identity = f"[bold red]{identity}[/]"
        table.add_row(
            s.mode,
            _spread(s.tokens_per_second),
            _spread(s.speedup, "{:.2f}", "×"),
            _opt(s.predicted_speedup, "{:.2f}×"),
            _opt(s.acceptance_rate, "{:.1%}"),
            _opt(s.alpha, "{:.3f}"),
            _opt(s.tokens_per_pass, "{:.2f}"),
            _spread(s.ttft_ms, "{:.0f}"),
            identity,
            _opt(s.peak_rss_mb, "{:.0f}"),
        )
    return table


def physics_line(p: Physics | None) -> str:
    if p is None:
        return "physics: not measured"
    bs = ", ".join(f"b({n})={v:.2f}" for n, v in sorted(p.b.items()) if n > 1)
    c = "—" if p.c is None else f"{p.c:.3f}"
    draft = "" if p.draft_token_ms is None else f", draft {p.draft_token_ms:.1f} ms/token"
    return f"physics: target {p.target_token_ms:.1f} ms/token{draft}; c={c}; {bs}"


def print_report(console: Console, summaries: Sequence[ModeSummary], physics: Physics | None,
                 title: str, notes: Sequence[str] = ()) -> None:
    console.print(build_table(summaries, title))
    console.print(physics_line(physics))
    console.print(
        "tok/s and speedup: median (min–max) over runs; speedup = tok/s ratio to target alone "
        "pair by pair (same prompt, same round); predicted = (1−α^(k+1)) / ((1−α)(k·c + b(k+1))) "
        "from the measured c, b and each run's own α, median over runs (adaptive: the best k at "
        "the α the fixed lengths saw on the same prompt and round); α = accepted / (accepted + "
        "rejections) over all passes; identical = runs whose greedy tokens equal target "
        "alone's",
        soft_wrap=not console.is_terminal,
    )
    for note in notes:
        console.print(f"note: {note}")


def write_plot(path: Path, summaries: Sequence[ModeSummary]) -> None:
    """Two panels: tokens/s by mode (median with range), and acceptance by draft position."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SpecchatError(PLOT_HINT) from None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    shown = [s for s in summaries if s.tokens_per_second is not None]
    xs = range(len(shown))
    med = [s.tokens_per_second.median for s in shown]  # type: ignore[union-attr]
    lo = [m - s.tokens_per_second.low for m, s in zip(med, shown, strict=True)]  # type: ignore[union-attr]
    hi = [s.tokens_per_second.high - m for m, s in zip(med, shown, strict=True)]  # type: ignore[union-attr]
    ax1.bar(xs, med, yerr=[lo, hi], capsize=4, color="tab:blue")
    ax1.set_xticks(list(xs), [s.mode for s in shown], rotation=30, ha="right")
    ax1.set_ylabel("tokens/s (median, range)")
    ax1.set_title("Speed by mode and draft length")
    for s in summaries:
        ys = s.acceptance_by_position
        if ys and any(y is not None for y in ys):
            pts = [(i + 1, y) for i, y in enumerate(ys) if y is not None]
            ax2.plot([p for p, _ in pts], [y for _, y in pts], marker="o", label=s.mode)
    ax2.set_xlabel("draft position")
    ax2.set_ylabel("acceptance (given the earlier ones accepted)")
    ax2.set_ylim(0, 1.05)
    ax2.set_title("Acceptance by position")
    if ax2.lines:
        ax2.legend(fontsize="small")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise SpecchatError(f"cannot write plot {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
