"""The server-wide suffix index (`--suffix-history`): a reply learned from an earlier request is
drafted from it, and the answer is still the target's own, token for token."""

from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.real

QUESTION = [{"role": "user", "content": "Write a Python function that tells whether n is prime."}]
OTHER = [{"role": "system", "content": "You write short answers."}, *QUESTION]
# docs/engine.md's recipe for exact identity with a Q4_K target: one thread, batches of at most
# 5 (wider verification batches of Qwen's K-quants drift from one-token logits)
FLAGS = ["--n-ctx", "2048", "--max-tokens", "64", "--threads", "1", "--suffix-max", "4"]


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)


def _ask(client: openai.OpenAI, messages) -> tuple[list[int], dict]:
    """The reply's token ids and its stats."""
    reply = client.chat.completions.create(
        model="any", messages=messages, temperature=0, extra_body={"return_tokens": True}
    )
    extra = reply.model_extra or {}
    return extra["tokens"], extra["specchat"]


def test_earlier_requests_are_drafted_from_and_the_answer_is_the_target_s(serve, real_models):
    qwen = str(real_models["qwen"])
    drafting = _client(serve(["--target", qwen, "--lookup", *FLAGS]))  # history on by default
    first, first_stats = _ask(drafting, QUESTION)
    again, stats = _ask(drafting, QUESTION)  # an agent retrying: the reply is in the history
    other, _ = _ask(drafting, OTHER)  # another conversation asking the same
    assert first_stats["history_drafted"] == 0  # nothing earlier to copy from
    assert stats["history_accepted"] > 0, stats  # proposals came from the earlier request
    assert stats["history_accepted"] <= stats["suffix_accepted"] <= stats["accepted"]
    assert stats["accepted"] > first_stats["accepted"]
    alone = _client(serve(["--target", qwen, "--suffix-history", "0", *FLAGS]))  # no drafting
    want, alone_stats = _ask(alone, QUESTION)
    assert alone_stats["drafted"] == 0
    assert first == again == want
    assert other == _ask(alone, OTHER)[0]
