"""Model and generation flags shared by `ask`, `chat`, `serve` and `bench`, and the typed
PairRequest they make: turning it into a loaded pair is `specchat.pair_request`'s work (below
every front end, where no argparse namespace goes)."""

from __future__ import annotations

import argparse
from pathlib import Path

from specchat.engine.limits import MAX_DRAFT, check_settings
from specchat.engine.types import GenerationSettings
from specchat.pair_request import PairRequest

# settings (models.toml keys, as errors name them) whose flag is not the key with dashes
FLAGS = {"n_threads": "--threads"}


def flag_for(setting: str) -> str:
    """How the CLI spells a setting: its flag."""
    return FLAGS.get(setting, "--" + setting.replace("_", "-"))


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
    models.add_argument(
        "--rpc",
        metavar="HOST:PORT[,...]",
        help="put the target's layers on llama.cpp rpc-server machines (the draft stays local)",
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
        "--suffix-max", metavar="K", type=int,
        help=f"most tokens copied from the conversation per pass (1-{MAX_DRAFT}, default "
        f"{MAX_DRAFT})",
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
    """The generation flags' settings, checked against the one table of bounds."""
    generation = GenerationSettings(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        seed=args.seed,
        max_tokens=args.max_tokens,
    )
    check_settings(generation=generation)
    return generation


def pair_request(args: argparse.Namespace) -> PairRequest:
    """The model and generation flags (every command that loads a pair has both) as a request."""
    return PairRequest(
        pair=args.pair,
        target=args.target,
        draft=args.draft,
        no_draft=args.no_draft,
        lookup=args.lookup,
        cross_vocab=args.cross_vocab,
        n_gpu_layers=args.n_gpu_layers,
        n_ctx=args.n_ctx,
        threads=args.threads,
        extra_bufts=args.extra_bufts,
        offline=args.offline,
        draft_max=args.draft_max,
        draft_min=args.draft_min,
        suffix_max=args.suffix_max,
        p_min=args.p_min,
        no_adaptive=args.no_adaptive,
        rpc=args.rpc,
        config=args.config,
        generation=generation_settings(args),
    )
