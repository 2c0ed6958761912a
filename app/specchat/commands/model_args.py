"""Model and generation flags shared by `ask`, `chat` and `bench`, and their resolution into
engine settings (from explicit paths, or from a pair in models.toml)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from specchat.engine.types import (
    DraftMode,
    GenerationSettings,
    ModelSettings,
    SpecSettings,
)
from specchat.errors import SpecchatError

MAX_DRAFT = 32


@dataclass(frozen=True)
class ModelRequest:
    target: ModelSettings
    draft: ModelSettings | None
    spec: SpecSettings
    generation: GenerationSettings
    pair_name: str | None = None
    chat_template: str | None = None


def _gpu_layers(value: str) -> str:
    if value != "auto":
        try:
            int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer or 'auto', got {value!r}"
            ) from None
    return value


def add_model_args(parser: argparse.ArgumentParser, generation: bool = True) -> None:
    models = parser.add_argument_group("models")
    models.add_argument(
        "--pair", metavar="NAME", help="a pair from models.toml (default: its default pair)"
    )
    models.add_argument(
        "--target", metavar="PATH", type=Path, help="target GGUF (instead of --pair)"
    )
    draft = models.add_mutually_exclusive_group()
    draft.add_argument("--draft", metavar="PATH", type=Path, help="draft GGUF")
    draft.add_argument("--no-draft", action="store_true", help="target alone, no speculation")
    draft.add_argument(
        "--lookup", action="store_true", help="prompt lookup instead of a draft model"
    )
    models.add_argument(
        "--cross-vocab",
        action="store_true",
        default=None,
        help="allow a draft with another vocabulary (text-level drafting)",
    )
    models.add_argument(
        "--n-gpu-layers",
        metavar="N",
        type=_gpu_layers,
        help="layers to offload to the GPU: N, -1 for all, or auto",
    )
    models.add_argument("--n-ctx", metavar="N", type=int, help="context size in tokens")
    models.add_argument("--threads", metavar="N", type=int, help="CPU threads")
    models.add_argument(
        "--extra-bufts",
        action="store_true",
        help="enable llama.cpp's CPU weight repacking (faster prompts; may break "
        "exact greedy identity on some quantizations)",
    )
    models.add_argument("--offline", action="store_true", help="use downloaded models only")

    spec = parser.add_argument_group("speculation")
    spec.add_argument(
        "--draft-max", metavar="K", type=int, help=f"most draft tokens per pass (1-{MAX_DRAFT})"
    )
    spec.add_argument(
        "--draft-min", metavar="K", type=int, help="fewer draft tokens than this are not verified"
    )
    spec.add_argument(
        "--p-min", metavar="P", type=float, help="draft stops when its confidence drops below P"
    )
    spec.add_argument(
        "--no-adaptive", action="store_true", help="fixed draft length (no adaptive controller)"
    )

    if generation:
        gen = parser.add_argument_group("generation")
        gen.add_argument(
            "--temperature", metavar="T", type=float, default=0.0, help="0 = greedy (default)"
        )
        gen.add_argument("--top-k", metavar="K", type=int, default=0, help="0 = off")
        gen.add_argument("--top-p", metavar="P", type=float, default=1.0, help="1 = off")
        gen.add_argument("--min-p", metavar="P", type=float, default=0.0, help="0 = off")
        gen.add_argument("--seed", metavar="S", type=int, help="random seed for sampling")
        gen.add_argument(
            "--max-tokens", metavar="N", type=int, default=512, help="most tokens to generate"
        )


def generation_settings(args: argparse.Namespace) -> GenerationSettings:
    g = GenerationSettings(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        seed=args.seed,
        max_tokens=args.max_tokens,
    )
    validate_generation(g)
    return g


def validate_generation(g: GenerationSettings) -> None:
    problems = [
        (g.temperature < 0, f"--temperature must be >= 0 (got {g.temperature})"),
        (g.top_k < 0, f"--top-k must be >= 0 (got {g.top_k})"),
        (not 0 < g.top_p <= 1, f"--top-p must be in (0, 1] (got {g.top_p})"),
        (not 0 <= g.min_p < 1, f"--min-p must be in [0, 1) (got {g.min_p})"),
        (g.max_tokens < 1, f"--max-tokens must be >= 1 (got {g.max_tokens})"),
    ]
    for bad, message in problems:
        if bad:
            raise SpecchatError(message)


def _spec_overrides(args: argparse.Namespace, base: SpecSettings) -> SpecSettings:
    spec = base
    if args.draft_max is not None:
        if not 1 <= args.draft_max <= MAX_DRAFT:
            raise SpecchatError(
                f"--draft-max must be between 1 and {MAX_DRAFT} (got {args.draft_max})"
            )
        spec = dataclasses.replace(spec, draft_max=args.draft_max)
    if args.draft_min is not None:
        if args.draft_min < 0:
            raise SpecchatError(f"--draft-min must be >= 0 (got {args.draft_min})")
        spec = dataclasses.replace(spec, draft_min=args.draft_min)
    if args.p_min is not None:
        if not 0 <= args.p_min <= 1:
            raise SpecchatError(f"--p-min must be in [0, 1] (got {args.p_min})")
        spec = dataclasses.replace(spec, p_min=args.p_min)
    if args.no_adaptive:
        spec = dataclasses.replace(spec, adaptive=False)
    if args.cross_vocab:
        spec = dataclasses.replace(spec, cross_vocab=True)
    if args.lookup:
        spec = dataclasses.replace(spec, mode=DraftMode.LOOKUP)
    elif args.no_draft:
        spec = dataclasses.replace(spec, mode=DraftMode.NONE)
    return spec


def _model_overrides(args: argparse.Namespace, m: ModelSettings) -> ModelSettings:
    changes: dict[str, object] = {}
    if args.n_gpu_layers is not None and args.n_gpu_layers != "auto":
        changes["n_gpu_layers"] = int(args.n_gpu_layers)
    if args.n_ctx is not None:
        if args.n_ctx < 16:
            raise SpecchatError(f"--n-ctx must be at least 16 (got {args.n_ctx})")
        changes["n_ctx"] = args.n_ctx
    if args.threads is not None:
        if args.threads < 1:
            raise SpecchatError(f"--threads must be >= 1 (got {args.threads})")
        changes["n_threads"] = args.threads
    if args.extra_bufts:
        changes["use_extra_bufts"] = True
    return dataclasses.replace(m, **changes) if changes else m


def resolve_model_request(args: argparse.Namespace) -> ModelRequest:
    """Turn flags into engine settings: explicit --target/--draft paths, or a models.toml pair."""
    generation = generation_settings(args) if hasattr(args, "temperature") else GenerationSettings()
    if args.target is not None:
        if args.pair:
            raise SpecchatError("give either --pair or --target, not both")
        target = _model_overrides(args, ModelSettings(path=args.target))
        draft = None
        mode = DraftMode.NONE
        if args.draft is not None:
            draft = dataclasses.replace(
                target, path=args.draft, use_extra_bufts=target.use_extra_bufts
            )
            mode = DraftMode.MODEL
        spec = _spec_overrides(args, SpecSettings(mode=mode))
        if args.lookup:
            draft = None
        return ModelRequest(target, draft, spec, generation)
    if args.draft is not None:
        raise SpecchatError("--draft needs --target (or choose a --pair)")
    return _resolve_pair(args, generation)


def _resolve_pair(args: argparse.Namespace, generation: GenerationSettings) -> ModelRequest:
    from specchat.config import load_registry, to_pair_settings, to_spec_settings
    from specchat.sources import resolve_model

    registry = load_registry(getattr(args, "config", None))
    name = args.pair or registry.default_pair
    pair = registry.get(name)
    target_path = resolve_model(pair.target, offline=args.offline)
    use_draft = pair.draft is not None and not (args.no_draft or args.lookup)
    draft_path = resolve_model(pair.draft, offline=args.offline) if use_draft else None
    target, draft = to_pair_settings(pair, target_path, draft_path)
    target = _model_overrides(args, target)
    if draft is not None:
        draft = _model_overrides(args, draft)
    spec = _spec_overrides(args, to_spec_settings(pair))
    return ModelRequest(
        target, draft, spec, generation, pair_name=name, chat_template=pair.chat_template
    )
