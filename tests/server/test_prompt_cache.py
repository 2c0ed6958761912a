"""Two API clients taking turns with `specchat serve`: with the prompt cache, each
conversation's next turn restores its own state instead of re-reading it, and the replies are
the ones a server without the cache gives when each conversation is served alone."""

from __future__ import annotations

import openai
import pytest

pytestmark = [pytest.mark.real, pytest.mark.slow]

DOC = " ".join(f"Item {i} costs {i * 3 % 17} coins." for i in range(60))
CONVERSATIONS = {
    "a": f"Price list:\n{DOC}\nWhich item is cheapest?",
    "b": f"Here is a list to remember:\n{DOC[::-1]}\nHow long is it?",
}


@pytest.fixture(scope="module")
def flags(real_models, derived_models) -> list[str]:
    return [
        "--target", str(real_models["smollm2"]),
        "--draft", str(derived_models["smollm2-q4_0"]),
        "--draft-max", "4", "--no-adaptive", "--n-ctx", "2048", "--threads", "1",
        "--max-tokens", "16",
    ]  # fmt: skip


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)


def _turns(client: openai.OpenAI, order: list[str]) -> dict[str, list]:
    """Serve the conversations' turns in this order; each turn goes on from its own last."""
    history: dict[str, list[dict[str, str]]] = {
        name: [{"role": "user", "content": text}] for name, text in CONVERSATIONS.items()
    }
    replies: dict[str, list] = {name: [] for name in CONVERSATIONS}
    for name in order:
        reply = client.chat.completions.create(model="any", messages=history[name])
        replies[name].append(reply)
        history[name] += [
            {"role": "assistant", "content": reply.choices[0].message.content or ""},
            {"role": "user", "content": "Say more."},
        ]
    return replies


def test_alternating_clients_restore_their_own_states(serve, flags, tmp_path):
    cached = serve(flags, env={"SPECCHAT_PROMPT_CACHE_DIR": str(tmp_path / "cache")})
    alternating = _turns(_client(cached), ["a", "b", "a", "b"])
    plain = serve([*flags, "--no-prompt-cache"])
    alone = _turns(_client(plain), ["a", "a", "b", "b"])
    for name in CONVERSATIONS:
        first, second = alternating[name]
        stats = (second.model_extra or {})["specchat"]
        assert stats["restored_prompt_tokens"] >= first.usage.prompt_tokens - 1
        assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 1
        texts = [r.choices[0].message.content for r in alternating[name]]
        assert texts == [r.choices[0].message.content for r in alone[name]]
    plain_second = (alone["b"][1].model_extra or {})["specchat"]
    assert plain_second["restored_prompt_tokens"] == 0
