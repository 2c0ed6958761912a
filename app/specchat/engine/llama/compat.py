"""Draft/target vocabulary compatibility, by the rule llama.cpp's speculative example uses."""

from __future__ import annotations

from specchat.engine.llama.model import LlamaModel
from specchat.errors import CROSS_VOCAB_HINT, VocabMismatchError

MAX_VOCAB_SIZE_DIFF = 128
FIRST_CHECKED_TOKEN = 5  # ids below this are special tokens that often differ harmlessly


def vocab_mismatch(target: LlamaModel, draft: LlamaModel) -> str | None:
    """Why the two models cannot share token ids, or None when they can."""
    if target.vocab_type != draft.vocab_type:
        return f"vocab types differ ({target.vocab_type} vs {draft.vocab_type})"
    if target.add_bos != draft.add_bos or (target.add_bos and target.bos != draft.bos):
        return (
            f"BOS differs (add_bos {target.add_bos}/{draft.add_bos}, id {target.bos}/{draft.bos})"
        )
    if target.add_eos != draft.add_eos or target.eos != draft.eos:
        return (
            f"EOS differs (add_eos {target.add_eos}/{draft.add_eos}, id {target.eos}/{draft.eos})"
        )
    if abs(target.n_vocab - draft.n_vocab) > MAX_VOCAB_SIZE_DIFF:
        sizes = f"{target.n_vocab} vs {draft.n_vocab}"
        return f"vocab sizes differ by more than {MAX_VOCAB_SIZE_DIFF} ({sizes})"
    for token in range(FIRST_CHECKED_TOKEN, min(target.n_vocab, draft.n_vocab)):
        a, b = target.token_text(token), draft.token_text(token)
        if a != b:
            return f"first differing token id is {token} ({a!r} vs {b!r})"
    return None


def vocab_mismatch_error(
    target: LlamaModel, draft: LlamaModel, reason: str, hint: bool = True
) -> VocabMismatchError:
    """A one-line error naming both files and the first difference."""
    return VocabMismatchError(
        f"draft {draft.path.name} and target {target.path.name} do not share a vocabulary: "
        f"{reason}{CROSS_VOCAB_HINT if hint else ''}",
        settings=("cross_vocab",) if hint else (),
    )
