"""`specchat bench`: side-by-side speed of target alone, fixed draft lengths, the adaptive
controller and prompt lookup, with the pair's physics and the speedup they predict.
`specchat bench make-pair`: a calibrated target for a draft GGUF (measures the engine)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from specchat.commands.model_args import add_model_args, pair_request
from specchat.engine.limits import MAX_DRAFT
from specchat.engine.types import ModelSettings
from specchat.errors import SpecchatError
from specchat.pair_request import ModelRequest, resolve_model_request

BENCH_N_CTX = 2048
AGENT_N_CTX = 8192  # the agent session resends a 150-line file twice
AGENT_MAX_TOKENS = 2048  # the edit step writes the whole file back
MAKE_PAIR_HELP = """\
Build a calibrated TARGET from a small llama-family DRAFT GGUF: extra full-size transformer blocks,
copies of the existing ones placed right after the block they copy, whose residual outputs
(attn_output, ffn_down) are scaled by a small epsilon. --cost sets how many blocks are added
(target cost about X times the draft's); --agreement sets epsilon (1.0 gives epsilon 0: the
target's logits equal the draft's). Such a pair measures the speculative ENGINE on this hardware,
not a model: its agreement is dialled in, not earned."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="measure what speculative decoding buys on this machine",
        description="Run target alone, fixed draft lengths, adaptive and prompt lookup on the same "
                    "prompts, interleaved in one process, and report tokens/s, speedup pair by "
                    "pair, acceptance, greedy identity, and the speedup the pair's measured "
                    "physics predicts.",
    )
    add_model_args(p, generation=False)
    g = p.add_argument_group("benchmark")
    g.add_argument("--prompt-set", default="chat", metavar="NAME",
                   help="built-in prompts: chat, code, rewrite, long-context, edit, edit-chat "
                        "(three turns of edits), all (default: chat); agent: a scripted "
                        "coding-agent session through the API, target alone vs the chain")
    g.add_argument("--prompts", type=Path, metavar="FILE",
                   help='JSONL prompts: {"prompt": "..."} or {"messages": [...]} per line')
    g.add_argument("--system", metavar="TEXT", help="system prompt for every prompt")
    g.add_argument("--draft-lengths", default="2,4,6,8", metavar="K,K,...",
                   help="fixed draft lengths to run (default: 2,4,6,8)")
    g.add_argument("--rounds", type=int, default=2, metavar="N", help="rounds (default: 2)")
    g.add_argument("--no-lookup", action="store_true", help="skip the prompt-lookup mode")
    g.add_argument("--no-warmup", action="store_true", help="skip the warm-up runs")
    g.add_argument("--physics-reps", type=int, default=5, metavar="N",
                   help="repetitions when timing c and b(k): one before each prompt of each "
                   "round, the rest up front (default: 5)")
    g.add_argument("--llcpp-peer", action="store_true",
                   help="also run llama-cpp-python's own Llama(draft_model=prompt lookup) path")
    g.add_argument("--peer", choices=("llama.cpp",),
                   help="also run llama.cpp's own speculative modes (target alone, draft model, "
                        "ngram-simple, ngram-mod) on the same prompts, and its verification cost "
                        "curve; the programs built by `bash packaging/llama-tools.sh`")
    g.add_argument("--llama-cpp-bin", type=Path, metavar="DIR",
                   help="folder with llama-speculative-simple and llama-bench (default with "
                        "--peer llama.cpp: what packaging/llama-tools.sh built for this "
                        "llama-cpp-python)")
    g.add_argument("--cost-curve", action="store_true",
                   help="report the target's verification cost by pass width (with --peer "
                        "llama.cpp: beside llama-bench's)")
    g.add_argument("--native-k", type=int, default=6, metavar="K",
                   help="draft length for the native binary (default: 6)")
    g.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    g.add_argument("--plot", type=Path, metavar="FILE.png",
                   help="write a plot (needs the `plot` extra: matplotlib)")
    gen = p.add_argument_group("generation")
    gen.add_argument("--max-tokens", type=int, default=64, metavar="N",
                     help="tokens per reply (default: 64)")
    gen.add_argument("--temperature", type=float, default=0.0, metavar="T", help="0 = greedy")
    gen.add_argument("--top-k", type=int, default=0, metavar="K", help="0 = off")
    gen.add_argument("--top-p", type=float, default=1.0, metavar="P", help="1 = off")
    gen.add_argument("--min-p", type=float, default=0.0, metavar="P", help="0 = off")
    gen.add_argument("--seed", type=int, default=0, metavar="S", help="sampling seed (default: 0)")
    p.set_defaults(handler=run)

    sub = p.add_subparsers(dest="bench_command", metavar="make-pair")
    mp = sub.add_parser("make-pair", help="build a calibrated target for a draft GGUF",
                        description=MAKE_PAIR_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    mp.add_argument("draft", type=Path, metavar="DRAFT.gguf", help="small llama-family GGUF")
    mp.add_argument("out", type=Path, metavar="OUT.gguf", help="where to write the target")
    mp.add_argument("--cost", type=float, default=10.0, metavar="X",
                    help="target cost / draft cost, about (default: 10)")
    mp.add_argument("--agreement", type=float, default=1.0, metavar="A",
                    help="greedy per-token agreement to calibrate for, in (0, 1] (default: 1)")
    mp.add_argument("--epsilon", type=float, metavar="D",
                    help="set the total residual scale per copied block directly (no calibration)")
    mp.add_argument("--calib-tokens", type=int, default=40, metavar="N",
                    help="tokens per prompt in calibration runs (default: 40)")
    mp.add_argument("--threads", type=int, metavar="N", help="CPU threads for calibration")
    mp.add_argument("--no-check", action="store_true",
                    help="skip measuring the finished pair's agreement")
    mp.add_argument("--force", action="store_true", help="overwrite OUT.gguf")
    mp.set_defaults(handler=run_make_pair)


def _lengths(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SpecchatError(f"--draft-lengths must be integers like 2,4,6 (got {text!r})") from None
    if not ks or any(not 1 <= k <= MAX_DRAFT for k in ks):
        raise SpecchatError(f"--draft-lengths must be between 1 and {MAX_DRAFT} (got {text!r})")
    return sorted(set(ks))


def _prompts(args: argparse.Namespace) -> list:
    from specchat.bench.prompts import SET_NAMES, builtin_set, load_prompt_file

    if args.prompts is not None:
        return load_prompt_file(args.prompts, args.system)
    if args.prompt_set == "all":
        return [p for name in SET_NAMES for p in builtin_set(name, args.system)]
    return builtin_set(args.prompt_set, args.system)


def run(args: argparse.Namespace) -> int:
    if args.prompt_set == "agent" and args.prompts is None:
        return _run_agent(args)
    if args.rounds < 1:
        raise SpecchatError(f"--rounds must be >= 1 (got {args.rounds})")
    if args.physics_reps < 1:
        raise SpecchatError(f"--physics-reps must be >= 1 (got {args.physics_reps})")
    if not 1 <= args.native_k <= MAX_DRAFT:
        raise SpecchatError(f"--native-k must be between 1 and {MAX_DRAFT} (got {args.native_k})")
    lengths = _lengths(args.draft_lengths)
    prompts = _prompts(args)
    if args.plot is not None:
        _check_plot(args.plot)
    if args.peer == "llama.cpp" and args.llama_cpp_bin is None:
        args.llama_cpp_bin = _built_llama_tools()
    if args.llama_cpp_bin is not None:
        from specchat.bench.peers import find_native

        find_native(args.llama_cpp_bin)
    target, draft, request = _models(args, BENCH_N_CTX)
    from specchat.bench.runner import BenchConfig, run_bench

    cfg = BenchConfig(
        target=target,
        draft=draft,
        prompts=prompts,
        generation=request.generation,
        base_spec=request.spec,
        draft_lengths=lengths,
        rounds=args.rounds,
        adaptive=not args.no_adaptive,
        lookup=not args.no_lookup,
        adaptive_max=args.draft_max,
        fixed_p_min=args.p_min if args.p_min is not None else 0.0,
        chat_template=request.chat_template,
        warmup=not args.no_warmup,
        physics_reps=args.physics_reps,
        llcpp_peer=args.llcpp_peer,
        native_bin=args.llama_cpp_bin,
        native_k=args.native_k,
        cost_curve=args.cost_curve or args.peer is not None,
    )
    _report(args, cfg, run_bench(cfg, progress=_progress(args.json)))
    return 0


def _models(args: argparse.Namespace, n_ctx: int) -> tuple[ModelSettings, ModelSettings | None,
                                                           ModelRequest]:
    """The pair the flags ask for, with the benchmark's context size unless --n-ctx says."""
    request = resolve_model_request(pair_request(args))
    target, draft = request.target, request.draft
    if args.n_ctx is None:
        target = dataclasses.replace(target, n_ctx=n_ctx)
        draft = dataclasses.replace(draft, n_ctx=n_ctx) if draft is not None else None
    return target, draft, request


def _built_llama_tools() -> Path:
    """Where packaging/llama-tools.sh put llama.cpp's programs for this llama-cpp-python."""
    from importlib.metadata import version

    from specchat.config.paths import cache_dir
    from specchat.engine.llama.devices import backend

    kind = backend().lower()
    folder = cache_dir() / "llama-tools" / f"{version('llama-cpp-python')}-{kind}"
    if not (folder / "llama-speculative-simple").is_file():
        raise SpecchatError(
            f"--peer llama.cpp: llama.cpp's programs are not built for this llama-cpp-python "
            f"({folder} is empty): run `bash packaging/llama-tools.sh` once, or pass "
            "--llama-cpp-bin DIR"
        )
    return folder


def _run_agent(args: argparse.Namespace) -> int:
    """The agent session through the API (bench/agent.py): target alone vs the chain."""
    from specchat.bench.agent import default_modes, report, run_agent_bench

    target, draft, request = _models(args, AGENT_N_CTX)
    from specchat.engine import load_engine

    engine = load_engine(target, draft, request.spec, request.chat_template)
    doc = report(run_agent_bench(engine, request.label, default_modes(request.spec),
                                 max(args.max_tokens, AGENT_MAX_TOKENS)))
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    print(f"specchat bench --prompt-set agent: {request.label}")
    print(f"{'mode':<20} {'seconds':>8} {'tokens':>7} {'tok/s':>7} {'accept':>7} {'speedup':>8} "
          "identical  per request (s)")
    for s in doc["sessions"]:
        print(f"{s['mode']:<20} {s['seconds']:>8.1f} {s['generated_tokens']:>7} "
              f"{s['tokens_per_second']:>7.2f} {s['acceptance_rate']:>7.2f} {s['speedup']:>7.2f}x "
              f"{'yes' if s['identical'] else 'NO':<10} {s['turn_seconds']}")
    copied = [f"{s['mode']}: {s['accepted_from_history']}" for s in doc["sessions"][1:]]
    print(f"tokens accepted from earlier requests' index: {', '.join(copied)}")
    for s in doc["sessions"][1:]:
        if s["ceiling"]:
            print(f"ceiling for {s['mode']} on this machine (every token after the first drafted "
                  f"and accepted, passes of {s['ceiling_width']} tokens at their measured cost, "
                  f"prompt time as measured): {s['ceiling']:.2f}x; reached "
                  f"{s['speedup'] / s['ceiling']:.0%} of it")
    return 0


def _check_plot(path: Path) -> None:
    import importlib.util

    from specchat.bench.report import PLOT_HINT

    if importlib.util.find_spec("matplotlib") is None:
        raise SpecchatError(PLOT_HINT)
    if path.suffix.lower() != ".png":
        raise SpecchatError(f"--plot writes a PNG file: give a name ending in .png (got {path})")
    if not path.parent.is_dir():
        raise SpecchatError(f"--plot: folder does not exist: {path.parent}")


def _progress(quiet: bool):
    def show(message: str) -> None:
        if not quiet and sys.stderr.isatty():
            print(f"\r\033[K{message}", end="", file=sys.stderr, flush=True)

    return show


def _report(args: argparse.Namespace, cfg, run) -> None:
    from rich.console import Console

    from specchat.bench.report import print_report, write_plot
    from specchat.bench.results import summarize, to_json_doc

    if not args.json and sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr)
    greedy = cfg.generation.greedy
    summaries = summarize(run.modes, run.records, run.physics, greedy=greedy)
    if not greedy:
        run.notes.append("sampling: token identity with target alone is not expected (the "
                         "outputs match in distribution); the identical column is left empty")
    if args.plot is not None:
        write_plot(args.plot, summaries)
    settings = _settings_doc(cfg)
    if run.placement is not None:
        settings["placement"] = run.placement.to_dict()
    if args.json:
        print(json.dumps(to_json_doc(settings, run.physics, summaries, run.records,
                                     run.notes), indent=1))
        return
    title = f"specchat bench: {cfg.target.path.name}"
    if cfg.draft is not None:
        title += f" ← draft {cfg.draft.path.name}"
    title += (f" ({len(cfg.prompts)} prompts × {cfg.rounds} rounds, "
              f"{cfg.generation.max_tokens} tokens)")
    console = Console()
    if not console.is_terminal:  # piped: do not squeeze the table into 80 columns
        console = Console(width=160)
    print_report(console, summaries, run.physics, title, run.notes)
    if run.placement is not None:
        console.print(run.placement.line())
    if args.plot is not None:
        Console().print(f"plot written to {args.plot}")


def _settings_doc(cfg) -> dict[str, object]:
    from specchat.bench.rss import PeakRss

    return {
        "target": str(cfg.target.path),
        "draft": None if cfg.draft is None else str(cfg.draft.path),
        "prompts": [p.name for p in cfg.prompts],
        "rounds": cfg.rounds,
        "draft_lengths": list(cfg.draft_lengths),
        "generation": dataclasses.asdict(cfg.generation),
        "n_ctx": cfg.target.n_ctx,
        "n_threads": cfg.target.n_threads,
        "n_gpu_layers": cfg.target.n_gpu_layers,
        "fixed_p_min": cfg.fixed_p_min,
        "peak_rss_exact": PeakRss.exact_supported(),
    }


def run_make_pair(args: argparse.Namespace) -> int:
    from specchat.bench.pair_cli import make_pair

    return make_pair(args)
