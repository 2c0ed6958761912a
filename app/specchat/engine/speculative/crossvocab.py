"""Cross-vocabulary drafting: a draft model with another tokenizer proposes *text*.

The draft reads the conversation rendered with its own chat template plus the reply so far
(re-tokenized in its vocabulary), continues it, and its continuation is re-tokenized with the
target's tokenizer. Only token-boundary-safe target tokens are proposed; the target verifies them
exactly as in the same-vocabulary path, so the output is still the target's own."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from specchat.engine.llama.model import LlamaModel
from specchat.engine.llama.template import CHATML, ChatTemplate
from specchat.engine.speculative.drafting import Draft, ModelDrafter, common_prefix
from specchat.engine.types import GenerationSettings, Message

GREEDY = GenerationSettings(temperature=0.0)
# Measured on SmolLM2/Gemma-3 drafting for Qwen2.5-Coder/Gemma-3 (code and prose): 38-54% of
# proposed target tokens accepted. Exploring a cross-vocabulary draft costs the draft's whole
# prompt evaluation, so it is explored only where it would pay at this rate.
TYPICAL_ACCEPTANCE = 0.6
ANCHOR_TOKENS = 2  # target tokens re-tokenized with the draft text to find a clean boundary


def complete_utf8(data: bytes) -> bytes:
    """Drop a trailing incomplete UTF-8 sequence (a character split across tokens)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # continuation byte: keep looking for the lead byte
            continue
        need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
        return data if need <= back else data[:-back]
    return data


def boundary_tokens(target: LlamaModel, anchor: bytes, continuation: bytes) -> list[int]:
    """Target tokens for `continuation`, as they would follow `anchor` (the end of the text so
    far). Tokenizing anchor + continuation together lets merges and leading spaces come out as
    the target would see them; if a token straddles the boundary, nothing can be proposed."""
    try:
        text = anchor.decode("utf-8") + continuation.decode("utf-8")
    except UnicodeDecodeError:  # invalid bytes on either side: no clean boundary to propose at
        return []
    tokens = target.tokenize(text, add_special=False, parse_special=False)
    consumed = b""
    for i, tok in enumerate(tokens):
        if consumed == anchor:
            return tokens[i:]
        if len(consumed) > len(anchor):
            return []
        consumed += target.piece(tok)
    return []


class CrossVocabDrafter:
    typical_acceptance = TYPICAL_ACCEPTANCE

    def __init__(self, target: LlamaModel, draft: LlamaModel, p_min: float) -> None:
        self.target = target
        self.draft = draft
        self.inner = ModelDrafter(draft, p_min)
        source = draft.chat_template() or CHATML
        self.template = ChatTemplate(
            source,
            bos_token=_text(draft, draft.bos),
            eos_token=_text(draft, draft.eos),
            name=draft.path.name,
        )
        self._prompt_len = 0
        self._draft_prompt: list[int] = []
        self._prompt_lag = 0  # draft-prompt tokens not in the draft's cache yet
        self._synced = 0  # context length (target tokens) at the last proposal

    def reset(self) -> None:
        self.inner.reset()

    def lag(self, context: Sequence[int]) -> int:
        # Reply tokens count as draft tokens: the two vocabularies cut text about alike.
        return self._prompt_lag + len(context) - max(self._synced, self._prompt_len)

    def prepare(self, prompt: Sequence[int]) -> None:
        self.inner.catch_up(self._draft_prompt)
        self._prompt_lag, self._synced = 0, len(prompt)

    def begin(self, prompt: Sequence[int], messages: Sequence[Message] | None) -> None:
        """A new reply: render the conversation for the draft in its own format."""
        self._prompt_len = len(prompt)
        if messages:
            text = self.template.render(messages, add_generation_prompt=True)
        else:  # raw token prompt: the target's text, read by the draft as plain text
            text = b"".join(self.target.token_text(t) for t in prompt).decode(errors="replace")
        tokens = self.draft.tokenize(text, add_special=True, parse_special=True)
        bos = self.draft.bos
        if len(tokens) >= 2 and tokens[0] == bos and tokens[1] == bos:
            tokens = tokens[1:]
        self._draft_prompt = tokens
        self._prompt_lag = len(tokens) - common_prefix(self.draft.tokens, tokens)
        self._synced = self._prompt_len  # nothing of this reply has been read yet

    def propose(
        self,
        context: Sequence[int],
        n: int,
        settings: GenerationSettings,
        rng: np.random.Generator,
    ) -> Draft:
        t0 = time.perf_counter()
        target = self.target
        generated = context[self._prompt_len :]
        reply = b"".join(target.piece(t) for t in generated)
        if complete_utf8(reply) != reply:  # mid-character: wait for the rest of it
            return Draft([], None, draft_s=time.perf_counter() - t0)
        reply_tokens = self.draft.tokenize(
            reply.decode("utf-8", errors="replace"), add_special=False, parse_special=False
        )
        draft_ctx = self._draft_prompt + reply_tokens
        self._prompt_lag, self._synced = 0, len(context)
        t1 = time.perf_counter()
        inner = self.inner.propose(draft_ctx, n + 1, GREEDY, rng)
        ended = bool(inner.tokens) and self.draft.is_eog(inner.tokens[-1])
        words = [t for t in inner.tokens if not self.draft.is_eog(t)]
        continuation = complete_utf8(b"".join(self.draft.piece(t) for t in words))
        anchor = b"".join(target.piece(t) for t in generated[-ANCHOR_TOKENS:])
        proposal: list[int] = []
        if continuation:
            proposal = boundary_tokens(target, anchor, continuation)
            if not ended:
                proposal = proposal[:-1]  # the last token may merge with text still to come
            safe = []
            for tok in proposal[:n]:
                if target.is_control(tok) or target.is_eog(tok):
                    break  # special tokens are never proposed
                safe.append(tok)
            proposal = safe
        t2 = time.perf_counter()
        return Draft(
            proposal,
            None,
            draft_s=inner.draft_s + (t2 - t1 - inner.draft_s - inner.catchup_s),
            catchup_s=inner.catchup_s + (t1 - t0),
            catchup_tokens=inner.catchup_tokens,
        )


def _text(model: LlamaModel, token: int) -> str:
    return model.token_text(token).decode(errors="replace") if token >= 0 else ""
