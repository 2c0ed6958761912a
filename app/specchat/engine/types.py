"""The engine's public data: settings in, events and stats out. Plain dataclasses, no UI."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Union


@dataclass(frozen=True)
class ModelSettings:
    """How to load one GGUF model."""

    path: Path
    n_ctx: int = 4096
    n_gpu_layers: int = 0  # -1 = all layers; "auto" is resolved to a number by the config layer
    n_threads: int | None = None  # None = llama.cpp's default for this machine
    n_batch: int = 512
    flash_attn: bool | None = None  # None = let llama.cpp decide
    main_gpu: int = 0
    # llama.cpp's CPU weight repacking. Off by default: with it, batched and one-token logits of
    # Q4_K models differ, which breaks greedy exactness of speculative decoding (see README).
    use_extra_bufts: bool = False
    # llama.cpp RPC servers ("HOST:PORT") that take this model's offloaded layers (the target
    # only; see engine/llama/rpc.py). With servers, n_gpu_layers counts the layers sent to them.
    rpc_servers: tuple[str, ...] = ()


class DraftMode(str, enum.Enum):
    NONE = "none"  # target alone
    MODEL = "model"  # a GGUF draft model, chained after the suffix drafter (SpecSettings.suffix)
    LOOKUP = "lookup"  # no model: the suffix drafter alone (matches in the conversation)


@dataclass(frozen=True)
class SpecSettings:
    """Speculative decoding settings."""

    mode: DraftMode = DraftMode.MODEL
    draft_max: int = 8  # most tokens the draft model proposes per target pass
    # Most tokens the suffix drafter proposes per pass. Its proposals cost nothing to make, so a
    # reply that copies a whole function is verified in long runs (limits.MAX_DRAFT).
    suffix_max: int = 32
    draft_min: int = 0  # fewer proposed tokens than this are not worth a batched pass
    # The draft stops early when its top probability falls below p_min. Off by default: the
    # adaptive controller already sizes drafts from measured acceptance, and on a calibrated
    # pair with full agreement p_min = 0.5 cut the speedup from 1.36x to 1.07x (README).
    p_min: float = 0.0
    adaptive: bool = True  # tune draft_max from measured throughput; may switch speculation off
    cross_vocab: bool = False  # allow a draft with another vocabulary (text-level drafting)
    # Mode "model": try the suffix drafter (copies from the conversation, free) before the draft
    # model each round. False: the draft model alone.
    suffix: bool = True
    # Where what the draft-length controller learns is kept between runs (None: not kept). The
    # front end chooses the file (specchat's cache folder); see engine/speculative/learned.py.
    learned_path: Path | None = None


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling and stopping. temperature 0 = greedy."""

    temperature: float = 0.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    min_p: float = 0.0  # 0 = off
    seed: int | None = None
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    grammar: str | None = None  # GBNF every target pick must follow (speculative/constraint.py)
    logprobs: int | None = None  # None: off; k: each token's log-probability and the top k

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True)
class ToolCall:
    """A function call the assistant made: `arguments` is its JSON text, as OpenAI sends it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant message's calls
    tool_call_id: str | None = None  # a tool message: the call it answers
    name: str | None = None  # a tool message: the function's name


class DrafterKind(str, enum.Enum):
    """The drafters of the chain, in the order they are asked."""

    SUFFIX = "suffix"  # copies what followed an earlier match in the conversation (free)
    MODEL = "model"  # a GGUF draft model (same vocabulary or cross-vocabulary)


@dataclass
class DrafterCounters:
    """What one drafter did: proposals sent to verification, tokens in them, tokens the target
    kept, and seconds spent making them (catch-up included)."""

    proposals: int = 0
    drafted: int = 0
    accepted: int = 0
    draft_s: float = 0.0

    def accept(self, drafted: int, accepted: int, draft_s: float) -> None:
        self.proposals += 1
        self.drafted += drafted
        self.accepted += accepted
        self.draft_s += draft_s


class Origin(str, enum.Enum):
    DRAFT = "draft"  # proposed by the drafter and accepted by the target
    TARGET = "target"  # produced by the target itself (the correction or bonus token)


# The stats every surface reports under exactly these names (JSON, bench, UI), in this order.
STATS_NAMES = (
    "prompt_tokens",
    "prompt_ms",
    "generated_tokens",
    "generation_ms",
    "tokens_per_second",
    "ttft_ms",
    "drafted",
    "accepted",
    "acceptance_rate",
    "target_passes",
    "tokens_per_pass",
    "draft_max",
    "model_drafted",
    "model_accepted",
    "suffix_drafted",
    "suffix_accepted",
)


@dataclass
class Stats:
    """Generation statistics. Field names are the JSON names (see README)."""

    prompt_tokens: int = 0  # tokens in the rendered prompt
    prompt_ms: float = 0.0  # time to evaluate the part of the prompt not already cached
    generated_tokens: int = 0
    generation_ms: float = 0.0  # from the first generated token's pass to the end
    tokens_per_second: float = 0.0  # generated_tokens / generation time (after the first token)
    ttft_ms: float = 0.0  # time to first token, from the start of the request
    drafted: int = 0  # tokens proposed by the drafter and sent to the target for verification
    accepted: int = 0  # of those, accepted by the target
    acceptance_rate: float = 0.0  # accepted / drafted (0 when nothing was drafted)
    target_passes: int = 0  # target forward passes during generation
    tokens_per_pass: float = 0.0  # generated_tokens / target_passes
    draft_max: int = 0  # current (adaptive) or fixed draft length
    model_drafted: int = 0  # of `drafted`, proposed by the draft model
    model_accepted: int = 0
    suffix_drafted: int = 0  # of `drafted`, copied from the conversation by the suffix drafter
    suffix_accepted: int = 0
    # extra context, outside the fixed names above
    # of suffix_drafted/_accepted, copied from earlier requests (the server's SuffixHistory)
    history_drafted: int = 0
    history_accepted: int = 0
    cached_prompt_tokens: int = 0  # prompt tokens reused from the previous turn's KV cache
    # of those, restored from the prompt cache (a saved state: another chat, a restart...)
    restored_prompt_tokens: int = 0
    restore_saved_ms: float = 0.0  # reading time the restores spared (both models), about
    cross_vocab: bool = False
    mode: str = "none"
    finish_reason: str = ""  # "stop", "length", "cancelled", "context"

    def add_drafts(self, kind: DrafterKind, drafted: int, accepted: int) -> None:
        """Count one verified draft, in the totals and under its drafter's kind."""
        self.drafted += drafted
        self.accepted += accepted
        setattr(self, f"{kind.value}_drafted", getattr(self, f"{kind.value}_drafted") + drafted)
        setattr(self, f"{kind.value}_accepted", getattr(self, f"{kind.value}_accepted") + accepted)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_ordered_dict(self) -> dict[str, object]:
        """Every stat, the STATS_NAMES first in their order (what `ask --json` and the server's
        `specchat` object print)."""
        d = self.to_dict()
        return {**{name: d[name] for name in STATS_NAMES}, **d}


@dataclass(frozen=True)
class TokenLogprob:
    """A token's log-probability under the target, and the top tokens' (id, log-probability)."""

    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class TokenEvent:
    """One emitted token. text may be empty while a multi-byte UTF-8 character is incomplete."""

    text: str
    token_id: int
    origin: Origin
    # For Origin.DRAFT: which drafter proposed it (None when unknown).
    drafter: DrafterKind | None = None
    logprob: TokenLogprob | None = None  # when GenerationSettings.logprobs asks for it


@dataclass(frozen=True)
class ProgressEvent:
    """Live stats, sent after each target pass."""

    stats: Stats


@dataclass(frozen=True)
class NoticeEvent:
    """Something the user should know (turns dropped to fit the context, speculation off...)."""

    message: str
    kind: str = "info"  # "info" | "warning"


@dataclass(frozen=True)
class DoneEvent:
    text: str
    token_ids: tuple[int, ...]
    stats: Stats
    dropped_turns: int = 0  # oldest turns dropped to fit the context


Event = Union[TokenEvent, ProgressEvent, NoticeEvent, DoneEvent]  # noqa: UP007 (py3.10 alias)


@dataclass(frozen=True)
class ModelInfo:
    name: str  # from the GGUF's general.name, else the file name
    path: Path
    architecture: str
    n_vocab: int
    n_params: int
    size_bytes: int
    n_ctx_train: int
    n_ctx: int
    n_layers: int  # repeating layers (blocks)
    # layers on the GPU counted as llama.cpp counts them: of n_layers + 1 (the output layer, which
    # llama.cpp offloads first), 0 when the build has no GPU whatever was asked
    n_gpu_layers: int
    quantization: str = ""
    remote: str = ""  # which part is on RPC servers, e.g. "31 of 31 layers ... on RPC H:P"

    @property
    def offloadable_layers(self) -> int:
        return self.n_layers + 1


@dataclass(frozen=True)
class EngineInfo:
    target: ModelInfo
    draft: ModelInfo | None
    backend: str  # "CPU", "CUDA", "Metal", "Vulkan"...
    mode: DraftMode
    cross_vocab: bool = False
    notices: tuple[str, ...] = field(default_factory=tuple)
