"""The benchmark run: load once, measure the physics, warm up, then interleave every mode on
every prompt for several rounds (mode order rotated each round), all in one process."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from specchat.bench.peers import (
    CURVE_DEPTH,
    CURVE_WIDTHS,
    NATIVE_MODES,
    LlamaCppPythonPeer,
    find_native,
    native_curve_args,
    native_spec_args,
    parse_native_curve,
    parse_native_spec,
    run_native,
)
from specchat.bench.physics import PhysicsSampler
from specchat.bench.prompts import BenchPrompt
from specchat.bench.results import BASELINE, ModeSpecInfo, Physics, RunRecord
from specchat.bench.rss import PeakRss
from specchat.engine.speculative.suffix import BUCKETS
from specchat.engine.types import (
    DoneEvent,
    DraftMode,
    EngineInfo,
    GenerationSettings,
    Message,
    ModelSettings,
    ProgressEvent,
    SpecSettings,
    TokenEvent,
)
from specchat.errors import SpecchatError
from specchat.stats_format import kind_figures, totals

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    target: ModelSettings
    draft: ModelSettings | None
    prompts: Sequence[BenchPrompt]
    generation: GenerationSettings = field(
        default_factory=lambda: GenerationSettings(max_tokens=64))
    # p_min, lookup n-grams, cross_vocab... shared by all modes
    base_spec: SpecSettings = field(default_factory=SpecSettings)
    draft_lengths: Sequence[int] = (2, 4, 6, 8)
    rounds: int = 2
    adaptive: bool = True
    lookup: bool = True
    adaptive_max: int | None = None  # draft_max for adaptive and lookup (default: longest length)
    fixed_p_min: float = 0.0  # fixed draft lengths draft exactly k tokens, as predicted
    chat_template: str | None = None
    warmup: bool = True
    physics_reps: int = 5
    llcpp_peer: bool = False
    native_bin: Path | None = None
    native_k: int = 6
    cost_curve: bool = False  # report the target's verify cost by pass width (and llama.cpp's)


@dataclass
class BenchRun:
    modes: list[ModeSpecInfo]
    records: list[RunRecord] = field(default_factory=list)
    physics: Physics | None = None
    notes: list[str] = field(default_factory=list)
    placement: Placement | None = None  # where the models ran


def engine_modes(cfg: BenchConfig) -> list[tuple[ModeSpecInfo, SpecSettings]]:
    """target alone; with a draft model: fixed lengths and the adaptive controller (the model
    alone), then the chain (suffix drafter, then the model: what a user gets by default);
    lookup: the chain without a model (what a user gets with --lookup). Nothing learned in
    earlier runs is loaded or saved: every mode starts from scratch in this process."""
    kmax = cfg.adaptive_max or max(cfg.draft_lengths, default=8)
    base = replace(cfg.base_spec, learned_path=None)
    model_only = replace(base, mode=DraftMode.MODEL, suffix=False)
    out = [(ModeSpecInfo(BASELINE, "target"), replace(base, mode=DraftMode.NONE, adaptive=False))]
    if cfg.draft is not None:
        for k in cfg.draft_lengths:
            out.append((ModeSpecInfo(f"k={k}", "fixed", k),
                        replace(model_only, draft_max=k, adaptive=False, p_min=cfg.fixed_p_min)))
        if cfg.adaptive:
            out.append((ModeSpecInfo("adaptive", "adaptive"),
                        replace(model_only, draft_max=kmax, adaptive=True)))
            out.append((ModeSpecInfo("chain", "chain"),
                        replace(base, mode=DraftMode.MODEL, suffix=True, draft_max=kmax,
                                adaptive=True)))
    if cfg.lookup:  # as a user gets it with --lookup: adaptive unless --no-adaptive
        label = "lookup" + ("" if base.adaptive and cfg.adaptive else f" k={kmax}")
        out.append((ModeSpecInfo(label, "lookup", kmax),
                    replace(base, mode=DraftMode.LOOKUP, draft_max=kmax,
                            adaptive=base.adaptive and cfg.adaptive)))
    return out


def run_engine_once(engine, prompt: Sequence[int], gen: GenerationSettings,
                    mode: str, round_no: int, name: str) -> RunRecord:
    engine.reset_cache()  # every run evaluates its whole prompt: runs are independent
    passes: list[tuple[int, int]] = []
    last = (0, 0)
    done: DoneEvent | None = None
    t_first: float | None = None
    with PeakRss() as rss:
        t0 = time.perf_counter()
        for ev in engine.generate(prompt, gen):
            if isinstance(ev, TokenEvent) and ev.token_id >= 0 and t_first is None:
                t_first = time.perf_counter()
            elif isinstance(ev, (ProgressEvent, DoneEvent)):
                s = ev.stats
                if s.drafted > last[0]:
                    passes.append((s.drafted - last[0], s.accepted - last[1]))
                last = (s.drafted, s.accepted)
                if isinstance(ev, DoneEvent):
                    done = ev
        t_end = time.perf_counter()
    if done is None:
        raise SpecchatError("the engine ended a reply without its final stats")
    n = len(done.token_ids)
    t_first = t_first or t_end
    tps = (n - 1) / (t_end - t_first) if n > 1 and t_end > t_first else 0.0
    return RunRecord(mode=mode, round=round_no, prompt=name, token_ids=tuple(done.token_ids),
                     tokens_per_second=tps, ttft_ms=(t_first - t0) * 1000, passes=tuple(passes),
                     stats=done.stats.to_dict(), peak_rss_mb=rss.mb)


def run_engine_chat(engine, chat: BenchPrompt, gen: GenerationSettings, mode: str,
                    round_no: int) -> RunRecord:
    """A multi-turn chat, as the app runs it: each turn's prompt is the conversation so far (the
    prompt cache keeps the earlier turns). tokens_per_second covers the whole chat, prompt
    processing included: all tokens generated / the time from the first request to the end."""
    engine.reset_cache()
    messages = list(chat.messages)
    ids: list[int] = []
    passes: list[tuple[int, int]] = []
    totals: dict[str, float] = {}
    ttft: float | None = None
    with PeakRss() as rss:
        t0 = time.perf_counter()
        for follow in (*chat.followups, None):
            done = _one_turn(engine, messages, gen, passes)
            if ttft is None:
                ttft = done.stats.ttft_ms
            ids.extend(done.token_ids)
            for key, value in done.stats.to_dict().items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    totals[key] = totals.get(key, 0) + value
            if follow is None:
                break
            messages += [Message("assistant", done.text), Message("user", follow)]
        elapsed = time.perf_counter() - t0
    totals["turns"] = len(chat.followups) + 1
    return RunRecord(mode=mode, round=round_no, prompt=chat.name, token_ids=tuple(ids),
                     tokens_per_second=len(ids) / elapsed if elapsed > 0 else 0.0,
                     ttft_ms=ttft, passes=tuple(passes), stats=totals, peak_rss_mb=rss.mb)


def _one_turn(engine, messages: Sequence[Message], gen: GenerationSettings,
              passes: list[tuple[int, int]]) -> DoneEvent:
    last = (0, 0)
    for ev in engine.chat(messages, gen):
        if isinstance(ev, (ProgressEvent, DoneEvent)):
            s = ev.stats
            if s.drafted > last[0]:
                passes.append((s.drafted - last[0], s.accepted - last[1]))
            last = (s.drafted, s.accepted)
            if isinstance(ev, DoneEvent):
                return ev
    raise SpecchatError("the engine ended a reply without its final stats")


@dataclass(frozen=True)
class Placement:
    """The backend the models ran on, its GPU devices and the layers each model put there
    (llama.cpp's numbering: of n_layers + 1, the output layer included)."""

    backend: str
    devices: tuple[str, ...] = ()
    gpu_layers: tuple[tuple[str, str], ...] = ()  # (role, "N/M")

    @classmethod
    def of(cls, info: EngineInfo) -> Placement:
        from specchat.engine.llama.devices import gpus

        models = (("target", info.target), ("draft", info.draft))
        return cls(
            backend=info.backend,
            devices=tuple(f"{d.name}: {d.description}" for d in gpus()),
            gpu_layers=tuple((role, f"{m.n_gpu_layers}/{m.offloadable_layers}")
                             for role, m in models if m is not None),
        )

    def line(self) -> str:
        if not self.devices:
            return f"backend: {self.backend}"
        placed = ", ".join(f"{role} {n} layers" for role, n in self.gpu_layers)
        return f"backend: {self.backend} ({', '.join(self.devices)}); on the GPU: {placed}"

    def to_dict(self) -> dict[str, object]:
        return {"backend": self.backend, "devices": list(self.devices),
                "gpu_layers": dict(self.gpu_layers)}


def run_bench(cfg: BenchConfig, progress: Progress = lambda _m: None) -> BenchRun:
    from specchat.engine.speculative.loop import SpeculativeEngine

    gen = cfg.generation
    max_tokens = gen.max_tokens
    n_ctx = cfg.target.n_ctx
    modes = engine_modes(cfg)
    first_spec = modes[1][1] if len(modes) > 1 else modes[0][1]
    progress("loading models")
    engine = SpeculativeEngine.load(cfg.target, cfg.draft, first_spec, cfg.chat_template)
    run = BenchRun([m for m, _ in modes], placement=Placement.of(engine.info))
    run.notes += engine.info.notices  # a CPU fallback, a missing GPU: the figures depend on it
    peer = None
    try:
        prompts = [(p.name, engine.tokenize_chat(p.messages)) for p in cfg.prompts]
        for name, toks in prompts:
            if len(toks) + max_tokens + 40 > n_ctx:
                raise SpecchatError(f"prompt {name} ({len(toks)} tokens) plus --max-tokens "
                                    f"{max_tokens} does not fit --n-ctx {n_ctx}")
        progress("measuring c and b(k)")
        kmax = max([*cfg.draft_lengths, cfg.adaptive_max or 1])
        physics = PhysicsSampler(engine.target, engine.draft_model, prompts[0][1], kmax + 1)
        # The physics reps are spread over the run (one before each prompt of each round,
        # the rest up front), so that they see the same drift of the machine as the runs.
        groups = cfg.rounds * len(prompts)
        physics.rep(keep=False)
        for _ in range(max(cfg.physics_reps - groups, 0)):
            physics.rep()
        runners: list[tuple[ModeSpecInfo, Callable[[Sequence[int], int, str, int], RunRecord]]] = []
        chats = {p.name: p for p in cfg.prompts if p.followups}
        chains: dict[str, object] = {}
        for info, spec in modes:
            runners.append((info, _engine_runner(engine, spec, gen, info.label, chats,
                                                 chains)))
        if cfg.llcpp_peer:
            progress("loading llama-cpp-python peer")
            t = cfg.target
            peer = LlamaCppPythonPeer(t.path, t.n_ctx, t.n_threads, t.n_gpu_layers, kmax)
            runners += _llcpp_runners(peer, kmax, run)
        if cfg.native_bin is not None:
            runners += _native_runners(cfg, engine, run)
        if cfg.warmup:
            progress("warm-up")
            for _info, fn in runners:
                fn(prompts[0][1], min(8, max_tokens), prompts[0][0], -1)
        for r in range(cfg.rounds):
            order = runners[r % len(runners):] + runners[: r % len(runners)]
            for name, toks in prompts:
                progress(f"round {r + 1}/{cfg.rounds} {name} physics")
                physics.rep()
                for info, fn in order:
                    progress(f"round {r + 1}/{cfg.rounds} {name} {info.label}")
                    run.records.append(fn(toks, max_tokens, name, r))
        run.physics = physics.result()
        run.notes += drafter_notes(run, chains)
        if cfg.cost_curve:
            progress("verification cost by width")
            run.notes += cost_curve_notes(cfg, engine, prompts[0][1])
    finally:
        if peer is not None:
            peer.close()
        engine.close()
    return run


def _engine_runner(engine, spec: SpecSettings, gen: GenerationSettings, label: str,
                   chats: dict[str, BenchPrompt] | None = None,
                   chains: dict[str, object] | None = None,
                   ) -> Callable[[Sequence[int], int, str, int], RunRecord]:
    # Each mode keeps its own drafters (and what they learned) from run to run, as one chat
    # session would: the adaptive mode must not start from what the fixed modes measured.
    chain = None

    def fn(toks: Sequence[int], max_tokens: int, name: str, round_no: int) -> RunRecord:
        nonlocal chain
        engine.set_spec(spec, keep_measurements=False)
        if chain is not None:
            engine.chain = chain
        settings = replace(gen, max_tokens=max_tokens)
        chat = (chats or {}).get(name)
        if chat is not None and round_no >= 0:  # (warm-up runs take the first turn only)
            record = run_engine_chat(engine, chat, settings, label, round_no)
        else:
            record = run_engine_once(engine, toks, settings, label, round_no, name)
        chain = engine.chain
        if chains is not None:
            chains[label] = chain
        return record

    return fn


def drafter_notes(run: BenchRun, chains: dict[str, object]) -> list[str]:
    """Per mode that drafted: acceptance per drafter, and how suffix proposals followed their
    match length (proposals, mean tokens proposed, share verified, mean tokens verified,
    acceptance of what was verified), per match-length bucket."""
    notes = []
    for info in run.modes:
        recs = [r for r in run.records if r.mode == info.label]
        figures = kind_figures(totals([r.stats for r in recs]))
        if not figures:
            continue
        parts = [f"{f.kind.value} {_share(f.accepted, f.drafted)}" for f in figures]
        line = f"{info.label}: accepted by drafter: {', '.join(parts)}"
        suffix = getattr(chains.get(info.label), "suffix", None)
        log = suffix.trust.log if suffix is not None else None
        if log:
            line += "; suffix proposals by match length: " + _suffix_log(log)
        notes.append(line)
    return notes


def _share(accepted: float, drafted: float) -> str:
    return f"{accepted:.0f}/{drafted:.0f} ({accepted / drafted:.0%})" if drafted else "0/0"


def _suffix_log(log: Sequence[Sequence[int]]) -> str:
    edges = (0, *BUCKETS)
    out = []
    for i, (props, tokens, sent, sent_tokens, accepted) in enumerate(log):
        if not props:
            continue
        span = f"{edges[i]}-{edges[i + 1] - 1}" if i + 1 < len(edges) else f"{edges[i]}+"
        verified = f", {sent_tokens / sent:.1f} verified" if sent else ""
        acc = f" {_share(accepted, sent_tokens)} accepted" if sent_tokens else ""
        out.append(f"{span}: {props}× {tokens / props:.1f} proposed, {sent / props:.0%} "
                   f"sent{verified}{acc}")
    return "; ".join(out) or "none"


def _llcpp_runners(peer: LlamaCppPythonPeer, k: int, run: BenchRun):
    base = ModeSpecInfo("llama-cpp-python target", "peer", identity_ref=None)
    look = ModeSpecInfo(f"llama-cpp-python lookup k={k}", "peer", k, baseline=base.label,
                        identity_ref=base.label)
    run.modes += [base, look]
    run.notes.append("llama-cpp-python lookup: speedup and identity are against "
                     "llama-cpp-python's own target-alone runs (Llama.generate, greedy; its "
                     "context settings differ from specchat's, so near-ties may break otherwise)")

    def make(info: ModeSpecInfo, which: str):
        def fn(toks: Sequence[int], max_tokens: int, name: str, round_no: int) -> RunRecord:
            with PeakRss() as rss:
                res = peer.run(which, toks, max_tokens)
            return RunRecord(info.label, round_no, name, res.token_ids, res.tokens_per_second,
                             res.ttft_ms, peak_rss_mb=rss.mb)
        return fn

    return [(base, make(base, "plain")), (look, make(look, "lookup"))]


def _native_runners(cfg: BenchConfig, engine, run: BenchRun):
    """llama.cpp's own speculative modes on the same prompts (llama-speculative-simple): its
    target alone (the baseline of the others), its draft-model mode when the draft shares the
    target's vocabulary, and its two model-free n-gram modes."""
    spec_exe, _ = find_native(cfg.native_bin)  # type: ignore[arg-type]
    k, t, d = cfg.native_k, cfg.target, cfg.draft
    same_vocab = d is not None and not engine.cross_vocab
    base = ModeSpecInfo("llama.cpp target", "peer", identity_ref=None)
    modes = [(base, "none")]
    for spec_type in NATIVE_MODES[1:]:
        if spec_type == "draft-simple" and not same_vocab:
            continue
        label = f"llama.cpp {spec_type}" + (f" k={k}" if spec_type == "draft-simple" else "")
        modes.append((ModeSpecInfo(label, "peer", baseline=base.label, identity_ref=None),
                      spec_type))
    run.modes += [info for info, _ in modes]
    run.notes.append(f"llama.cpp: {spec_exe.name} (greedy, same context and threads), speedups "
                     "against its own --spec-type none on the same prompt; tok/s as it reports")

    def make(info: ModeSpecInfo, spec_type: str):
        def fn(toks: Sequence[int], max_tokens: int, name: str, round_no: int) -> RunRecord:
            text = engine.target.detokenize(toks)
            out = run_native(spec_exe, native_spec_args(
                t.path, d.path if d is not None else None, text, max_tokens, k, t.n_ctx,
                t.n_threads, t.n_gpu_layers, spec_type))
            res = parse_native_spec(out)
            passes: tuple[tuple[int, int], ...] = ()
            if res.drafted:  # totals only: counted as one pass for acceptance_rate
                passes = ((res.drafted, res.accepted or 0),)
            return RunRecord(info.label, round_no, name, None, res.tokens_per_second, None,
                             passes=passes)
        return fn

    return [(info, make(info, spec_type)) for info, spec_type in modes]


def cost_curve_notes(cfg: BenchConfig, engine, context: Sequence[int], reps: int = 3) -> list[str]:
    """The target's verification cost by pass width (ms, after CURVE_DEPTH cached tokens):
    specchat's pass as the engine runs it (every row's logits computed and read), the same pass
    with the last row's logits only (what llama-bench times), and llama-bench's own."""
    from specchat.engine.speculative.costs import timed_pass

    target = engine.target
    fill = [context[i % len(context)] for i in range(CURVE_DEPTH + max(CURVE_WIDTHS))]
    target.reset()
    target.decode(fill[:CURVE_DEPTH], "last")

    def curve(every_row: bool) -> dict[int, float]:
        out = {}
        for w in CURVE_WIDTHS:
            times = []
            for _ in range(reps):
                times.append(timed_pass(target, fill[CURVE_DEPTH : CURVE_DEPTH + w], every_row))
                target.truncate(CURVE_DEPTH)
            out[w] = statistics.median(times) * 1000
        return out

    curves = {"specchat verify (every row)": curve(True), "specchat, last row only": curve(False)}
    target.reset()
    if cfg.native_bin is not None:
        _, bench_exe = find_native(cfg.native_bin)
        t = cfg.target
        curves["llama-bench (last row only)"] = parse_native_curve(run_native(
            bench_exe, native_curve_args(t.path, CURVE_WIDTHS, CURVE_DEPTH, reps, t.n_threads,
                                         t.n_gpu_layers)))
    return [f"pass cost by width at depth {CURVE_DEPTH} (ms), {name}: " + ", ".join(
        f"{w}: {ms[w]:.0f}" for w in CURVE_WIDTHS if w in ms) for name, ms in curves.items()]
