"""From what the user asked for to a loaded pair: the one layer below every front end.

The CLI (`ask`, `chat`, `bench`), the chat app and the server all turn model flags, models.toml
and defaults into engine settings here (downloading models the pair names, when needed), then
load the pair. Front ends only gather the user's choices into a PairRequest (argparse flags:
commands/model_args.py; a pair or files picked in the app: tui/loader.py) and hand it down;
nothing here knows argparse, Textual or HTTP."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from specchat.engine.limits import check_settings, check_value
from specchat.engine.protocol import ChatEngine
from specchat.engine.types import (
    DraftMode,
    GenerationSettings,
    ModelSettings,
    SpecSettings,
)
from specchat.errors import SpecchatError

if TYPE_CHECKING:  # pair_check reads GGUF metadata and sources: imported when a check runs
    from specchat.config.schema import ModelConfig
    from specchat.engine.llama.prompt_cache import PromptCache
    from specchat.pair_check import PairReport

DRAFT_ALONE = "draft needs target (or choose a pair)"


@dataclass(frozen=True)
class ModelRequest:
    """Everything needed to load a pair and generate with it."""

    target: ModelSettings
    draft: ModelSettings | None
    spec: SpecSettings
    generation: GenerationSettings
    pair_name: str | None = None
    chat_template: str | None = None

    @property
    def label(self) -> str:
        """What the user would call it: the pair's name, else the target's file name."""
        return self.pair_name or self.target.path.name


@dataclass(frozen=True)
class PairRequest:
    """What the user asked for, whatever front end gathered it (the CLI's flags, a pair or files
    picked in the app): the only input of this layer. None = models.toml or the default."""

    pair: str | None = None
    target: Path | None = None
    draft: Path | None = None
    no_draft: bool = False
    lookup: bool = False
    cross_vocab: bool | None = None
    n_gpu_layers: str | None = None  # N, -1 or "auto"
    n_ctx: int | None = None
    threads: int | None = None
    extra_bufts: bool = False
    offline: bool = False
    draft_max: int | None = None
    draft_min: int | None = None
    suffix_max: int | None = None
    p_min: float | None = None
    no_adaptive: bool = False
    rpc: str | None = None  # "HOST:PORT[,HOST:PORT...]": the target's layers on RPC servers
    config: str | None = None  # models.toml to use instead of the user's
    generation: GenerationSettings | None = None  # None: the defaults


def resolve_model_request(
    choice: PairRequest,
    *,
    progress: bool = True,
    cancel: threading.Event | None = None,
) -> ModelRequest:
    """Explicit --target/--draft paths, or a models.toml pair (downloaded if needed: with a
    progress bar on stderr unless progress is False; cancel stops a download at its next chunk
    and keeps the partial file for the next try)."""
    generation = choice.generation or GenerationSettings()
    check_settings(generation=generation)
    if choice.target is not None:
        return _resolve_paths(choice, generation)
    if choice.draft is not None:
        raise SpecchatError(DRAFT_ALONE, settings=("draft", "target", "pair"))
    return _resolve_pair(choice, generation, progress, cancel)


def check_request(choice: PairRequest) -> PairReport:
    """`specchat models check` for the user's choice (a pair name, or target/draft files):
    vocabulary match, memory estimate, offload plan. Metadata only; raises SpecchatError when
    a file is missing or unreadable."""
    from specchat.config import load_registry
    from specchat.pair_check import check_pair, files_pair

    if choice.target is not None:
        pair = files_pair(choice.target, choice.draft, bool(choice.cross_vocab))
    elif choice.draft is not None:
        raise SpecchatError(DRAFT_ALONE, settings=("draft", "target", "pair"))
    else:
        registry = load_registry(choice.config)
        pair = registry.get(choice.pair or registry.default_pair)
        if choice.cross_vocab:
            pair = pair.model_copy(update={"cross_vocab": True})
    return check_pair(pair, offline=choice.offline)


def load_pair(
    request: ModelRequest,
    cancel: threading.Event | None = None,
    prompt_cache: PromptCache | None = None,
) -> ChatEngine:
    """Load both models of a resolved request (the slow part: seconds, on the caller's thread;
    stops soon after cancel is set); with a prompt cache, their states are saved and restored
    through it."""
    from specchat.engine import load_engine

    return load_engine(
        request.target, request.draft, request.spec, request.chat_template, cancel,
        prompt_cache=prompt_cache,
    )


def _resolve_paths(choice: PairRequest, generation: GenerationSettings) -> ModelRequest:
    if choice.pair:
        raise SpecchatError("give either pair or target, not both", settings=("pair", "target"))
    assert choice.target is not None
    target = _model_overrides(choice, ModelSettings(path=choice.target))
    draft = None
    mode = DraftMode.NONE
    if choice.draft is not None:
        draft = dataclasses.replace(target, path=choice.draft)
        mode = DraftMode.MODEL
    spec = _spec_overrides(choice, SpecSettings(mode=mode))
    if choice.lookup:
        draft = None
    target = _rpc_overrides(choice, target, layers_set=choice.n_gpu_layers not in (None, "auto"))
    return ModelRequest(target, draft, spec, generation)


def _resolve_pair(
    choice: PairRequest,
    generation: GenerationSettings,
    progress: bool,
    cancel: threading.Event | None,
) -> ModelRequest:
    from specchat.config import load_registry
    from specchat.pair_settings import to_pair_settings, to_spec_settings
    from specchat.sources import resolve_model

    registry = load_registry(choice.config)
    name = choice.pair or registry.default_pair
    pair = registry.get(name)
    def fetch(model: ModelConfig) -> Path:
        return resolve_model(model, offline=choice.offline, progress=progress, cancel=cancel)

    target_path = fetch(pair.target)
    use_draft = pair.draft is not None and not (choice.no_draft or choice.lookup)
    draft_path = fetch(pair.draft) if use_draft and pair.draft is not None else None
    target, draft = to_pair_settings(pair, target_path, draft_path)
    target = _model_overrides(choice, target)
    layers_set = choice.n_gpu_layers not in (None, "auto") or pair.target.n_gpu_layers != "auto"
    target = _rpc_overrides(choice, target, pair_servers=pair.rpc, layers_set=layers_set)
    if draft is not None:
        draft = _model_overrides(choice, draft)
    spec = _spec_overrides(choice, to_spec_settings(pair))
    return ModelRequest(
        target, draft, spec, generation, pair_name=name, chat_template=pair.chat_template
    )


def _spec_overrides(choice: PairRequest, base: SpecSettings) -> SpecSettings:
    spec = base
    if choice.draft_max is not None:
        spec = dataclasses.replace(spec, draft_max=choice.draft_max)
    if choice.draft_min is not None:
        spec = dataclasses.replace(spec, draft_min=choice.draft_min)
    if choice.suffix_max is not None:
        spec = dataclasses.replace(spec, suffix_max=choice.suffix_max)
    if choice.p_min is not None:
        spec = dataclasses.replace(spec, p_min=choice.p_min)
    check_settings(spec=spec)
    if choice.no_adaptive:
        spec = dataclasses.replace(spec, adaptive=False)
    if choice.cross_vocab:
        spec = dataclasses.replace(spec, cross_vocab=True)
    if choice.lookup:
        spec = dataclasses.replace(spec, mode=DraftMode.LOOKUP)
    elif choice.no_draft:
        spec = dataclasses.replace(spec, mode=DraftMode.NONE)
    from specchat.config.paths import cache_dir

    # what the draft-length controller learns about this pair on this machine, between runs
    return dataclasses.replace(spec, learned_path=cache_dir() / "learned.json")


def _rpc_overrides(
    choice: PairRequest,
    target: ModelSettings,
    *,
    pair_servers: tuple[str, ...] = (),
    layers_set: bool,
) -> ModelSettings:
    """The target's RPC servers: --rpc, else the pair's `rpc` (the draft stays local). With
    servers and no layer count set by the user or the pair, every layer goes to them."""
    from specchat.engine.llama.rpc import parse_endpoints

    servers = parse_endpoints(choice.rpc) if choice.rpc is not None else pair_servers
    if not servers:
        return target
    layers = target.n_gpu_layers if layers_set else -1
    return dataclasses.replace(target, rpc_servers=servers, n_gpu_layers=layers)


def _model_overrides(choice: PairRequest, m: ModelSettings) -> ModelSettings:
    changes: dict[str, object] = {}
    if choice.n_gpu_layers is not None and choice.n_gpu_layers != "auto":
        changes["n_gpu_layers"] = int(choice.n_gpu_layers)
    if choice.n_ctx is not None:
        check_value("n_ctx", choice.n_ctx)
        changes["n_ctx"] = choice.n_ctx
    if choice.threads is not None:
        check_value("n_threads", choice.threads)
        changes["n_threads"] = choice.threads
    if choice.extra_bufts:
        changes["use_extra_bufts"] = True
    return dataclasses.replace(m, **changes) if changes else m
