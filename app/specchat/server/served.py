"""What the server needs from an engine beyond the chat app's `ChatEngine`: the target's
vocabulary (tokenizing, FIM tokens, token pieces), its chat template (tool support, call
syntax), tools in a chat, and generation from a raw prompt (completions, fill-in-the-middle).
`SpeculativeEngine` is one."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from specchat.engine.protocol import ChatEngine
from specchat.engine.types import Event, GenerationSettings, Message

if TYPE_CHECKING:
    from specchat.engine.llama.model import LlamaModel
    from specchat.engine.llama.template import ChatTemplate
    from specchat.engine.speculative.suffix import SuffixHistory


class ServedEngine(ChatEngine, Protocol):
    @property
    def target(self) -> LlamaModel: ...

    @property
    def template(self) -> ChatTemplate: ...

    def chat(
        self,
        messages: Sequence[Message],
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> Iterator[Event]: ...

    def generate(
        self,
        prompt: Sequence[int],
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]: ...

    def reset_cache(self) -> None: ...

    def use_suffix_history(self, history: SuffixHistory | None) -> None: ...
