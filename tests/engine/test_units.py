"""Pure-Python pieces of the engine: transforms, verification maths, text stream, chat template
sandbox."""

from __future__ import annotations

import numpy as np
import pytest

from specchat.engine.llama.template import ChatTemplate, TemplateError
from specchat.engine.llama.textstream import TextStream
from specchat.engine.speculative.sampling import distribution, sample, top_probability
from specchat.engine.speculative.verify import verify_greedy, verify_sampling
from specchat.engine.types import GenerationSettings, Message


def test_transforms():
    logits = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05], dtype=np.float32))
    p = distribution(logits, GenerationSettings(temperature=1.0))
    assert p == pytest.approx([0.5, 0.2, 0.15, 0.1, 0.05], rel=1e-5)
    p = distribution(logits, GenerationSettings(temperature=1.0, top_k=2))
    assert p == pytest.approx([0.5 / 0.7, 0.2 / 0.7, 0, 0, 0], rel=1e-5)
    p = distribution(logits, GenerationSettings(temperature=1.0, top_p=0.8))
    assert np.count_nonzero(p) == 3  # 0.5 + 0.2 < 0.8 <= 0.85
    p = distribution(logits, GenerationSettings(temperature=1.0, min_p=0.3))
    assert np.count_nonzero(p) == 2  # keeps p >= 0.15
    hot = distribution(logits, GenerationSettings(temperature=10.0))
    assert hot.max() < 0.25
    assert top_probability(logits) == pytest.approx(0.5, rel=1e-5)


def test_sample_follows_distribution():
    rng = np.random.default_rng(0)
    p = np.array([0.1, 0.0, 0.6, 0.3])
    counts = np.bincount([sample(p, rng) for _ in range(20000)], minlength=4) / 20000
    assert counts == pytest.approx(p, abs=0.015)


def test_verify_greedy():
    rows = [np.array([0, 5, 1.0]), np.array([9, 0, 1.0]), np.array([0, 0, 3.0])]
    v = verify_greedy(lambda i: rows[i], [1, 0])
    assert (v.accepted, v.next_token) == (2, 2)
    v = verify_greedy(lambda i: rows[i], [1, 2])
    assert (v.accepted, v.next_token) == (1, 0)
    v = verify_greedy(lambda i: rows[i], [2, 0])
    assert (v.accepted, v.next_token) == (0, 1)


@pytest.mark.parametrize("deterministic", [False, True])
def test_speculative_sampling_keeps_target_distribution(deterministic):
    """Leviathan/Chen acceptance: the first emitted token is distributed as p, whatever q is."""
    rng = np.random.default_rng(1)
    settings = GenerationSettings(temperature=1.0)
    p_logits = np.log(np.array([0.05, 0.45, 0.3, 0.2]))
    q = np.array([0.6, 0.1, 0.1, 0.2])
    counts = np.zeros(4)
    n = 40000
    for _ in range(n):
        x = sample(q, rng) if not deterministic else 0
        v = verify_sampling(lambda i: p_logits, [x], None if deterministic else [q], settings, rng)
        counts[x if v.accepted else v.next_token] += 1
    assert counts / n == pytest.approx(np.exp(p_logits), abs=0.01)


def test_text_stream_holds_back_stop_prefixes():
    s = TextStream(stop=("END",))
    assert s.feed(b"hello E") == "hello "
    assert s.feed(b"N") == ""
    assert s.feed(b"X") == "ENX"
    assert s.feed(b" bye EN") == " bye "
    assert s.feed(b"D and more") == ""
    assert s.stopped and s.text == "hello ENX bye "


def test_text_stream_utf8_split_across_tokens():
    s = TextStream()
    snowman = "☃".encode()
    assert s.feed(snowman[:1]) == ""
    assert s.feed(snowman[1:]) == "☃"
    assert s.feed(b"\xf0\x9f") == ""
    assert s.feed(b"\x98\x80") == "😀"


def test_template_renders_in_sandbox():
    t = ChatTemplate(
        "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ bos_token }}",
        bos_token="<s>",
    )
    assert t.render([Message("user", "hi")]) == "[user]hi<s>"
    evil = ChatTemplate("{{ messages.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError):
        evil.render([Message("user", "hi")])
    with pytest.raises(TemplateError, match="nope"):
        ChatTemplate("{{ raise_exception('nope') }}").render([])
