"""Speculative decoding engine: a draft proposes, the target verifies. Knows nothing of the UI.

Three homes, imports pointing down (tests/test_layers.py holds the order):

- here, the public face: `types.py` (settings in, events and stats out), `protocol.py` (the
  `ChatEngine` every front end drives), `limits.py` (every setting's bounds), `context.py` (what
  is dropped when a chat outgrows the context) and `load_engine` below;
- `llama/`, the llama.cpp glue: one model and its context, devices, RPC, saved states, the
  GGUF's chat template;
- `speculative/`, the algorithm, built on the glue: the generation loop and its steps.

Reading order for a newcomer:

1. `types.py` and `protocol.py`: what goes in and comes out, before how.
2. `speculative/loop.py`: `SpeculativeEngine.generate` and `_round`, the loop in named steps
   (prefill; then rounds of draft, verify in one target pass, credit, emit); it names every
   piece below.
3. `speculative/drafting.py` then `speculative/verify.py`: who proposes tokens and how the target
   keeps the longest agreeing prefix (greedy and sampling), the heart of exactness;
   `speculative/sampling.py` is the transform both sides share.
4. `speculative/costs.py`, `adaptive.py`, `suffix.py`: how far to draft, from measured costs,
   and drafting from the conversation's own text (and, for the server, earlier requests');
   `constraint.py`, exact picks under a grammar.
5. `llama/model.py`: the one wrapper over llama.cpp (batched passes, logits rows, KV rollback);
   the rest of `llama/` only when a question leads there (devices and offload, RPC, the prompt
   cache, templates).

docs/engine.md tells the same story in prose."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from specchat.engine.context import REFILL_SHARE, drop_oldest_turn, prompt_budget
from specchat.engine.protocol import ChatEngine
from specchat.engine.types import (
    DoneEvent,
    DraftMode,
    EngineInfo,
    Event,
    GenerationSettings,
    Message,
    ModelInfo,
    ModelSettings,
    NoticeEvent,
    Origin,
    ProgressEvent,
    SpecSettings,
    Stats,
    TokenEvent,
)

if TYPE_CHECKING:
    from specchat.engine.llama.prompt_cache import PromptCache

__all__ = [
    "REFILL_SHARE",
    "ChatEngine",
    "DoneEvent",
    "DraftMode",
    "EngineInfo",
    "Event",
    "GenerationSettings",
    "Message",
    "ModelInfo",
    "ModelSettings",
    "NoticeEvent",
    "Origin",
    "ProgressEvent",
    "SpecSettings",
    "Stats",
    "TokenEvent",
    "drop_oldest_turn",
    "load_engine",
    "prompt_budget",
]


def load_engine(
    target: ModelSettings,
    draft: ModelSettings | None,
    spec: SpecSettings,
    chat_template: str | None = None,
    cancel: threading.Event | None = None,
    prompt_cache: PromptCache | None = None,
) -> ChatEngine:
    """Load a pair (seconds; stops soon after cancel is set), restoring and keeping prompt
    states in `prompt_cache` when given. llama.cpp is imported here, on first use, not when the
    engine's types are."""
    from specchat.engine.speculative.loop import SpeculativeEngine

    engine = SpeculativeEngine.load(target, draft, spec, chat_template=chat_template,
                                    cancel=cancel)
    if prompt_cache is not None:
        engine.use_prompt_cache(prompt_cache)
    return engine
