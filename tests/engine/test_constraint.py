"""Grammar-constrained generation under speculation (engine/constraint.py) on real models:
greedy output equals the target alone under the same grammar, token for token, with the suffix
drafter and with a draft model; sampling keeps the masked target distribution; a grammar the
parser refuses is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from specchat.engine.constraint import Constraint, GrammarError
from specchat.engine.engine import SpeculativeEngine
from specchat.engine.llama import LlamaModel
from specchat.engine.sampling import distribution
from specchat.engine.types import (
    DraftMode,
    GenerationSettings,
    Message,
    ModelSettings,
    SpecSettings,
)

from .conftest import run
from .distribution import chi2_critical
from .test_real_models import engine

pytestmark = pytest.mark.real

# A schema a 0.5B model fills with a key list it would not write unprompted: masking matters.
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "languages": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "year": {"type": "integer"},
    },
    "required": ["name", "languages", "year"],
    "additionalProperties": False,
}
PROMPT = "Describe the Python programming language as JSON. Repeat the key names exactly."


def schema_gbnf() -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(json.dumps(SCHEMA))


def constrained(e: SpeculativeEngine, **gen: object):
    g = GenerationSettings(**{"max_tokens": 60, "grammar": schema_gbnf(), **gen})  # type: ignore[arg-type]
    return run(e.chat([Message("user", PROMPT)], g))[0]


def test_greedy_identity_under_a_grammar(real_models, derived_models):
    target = real_models["qwen"]
    alone = engine(target, None)
    lookup = SpeculativeEngine.load(
        ModelSettings(path=target, n_ctx=1024, n_threads=1),
        None,
        SpecSettings(mode=DraftMode.LOOKUP, draft_max=4, adaptive=False),
    )
    model = engine(target, derived_models["qwen-q2_k"], draft_max=4, adaptive=False)
    try:
        want = constrained(alone)
        value = json.loads(want.text)  # the grammar made it valid JSON of the schema
        assert set(value) == {"name", "languages", "year"} and isinstance(value["year"], int)
        free = run(alone.chat([Message("user", PROMPT)], GenerationSettings(max_tokens=60)))[0]
        assert free.text != want.text  # the grammar changed the reply: it was tested
        for spec in (lookup, model):
            got = constrained(spec)
            assert got.token_ids == want.token_ids, spec.spec.mode
            assert got.stats.drafted > 0 and got.stats.accepted > 0, spec.spec.mode
    finally:
        for e in (alone, lookup, model):
            e.close()


def test_sampling_keeps_the_masked_distribution(real_models, derived_models):
    """The 2nd token of a constrained reply (the first one verified against drafts), sampled
    with a draft model, against the exact masked target distribution."""
    target = real_models["smollm2"]
    grammar = 'root ::= [a-z]+ " " [a-z]+'  # lowercase words: most of the mass is masked away
    gen = GenerationSettings(temperature=1.0, top_k=8, max_tokens=3, grammar=grammar)
    spec = engine(target, derived_models["smollm2-q4_0"], draft_max=3, adaptive=False)
    messages = [Message("user", "Say two words.")]
    try:
        expected = _exact_second_token(target, spec.tokenize_chat(messages), gen)
        counts: dict[int, int] = {}
        drafted, n = 0, 300
        for seed in range(n):
            done = run(spec.chat(messages, GenerationSettings(**{**gen.__dict__, "seed": seed})))[0]
            drafted += done.stats.drafted
            counts[done.token_ids[1]] = counts.get(done.token_ids[1], 0) + 1
        assert drafted > 0
        bins, pooled_e, pooled_o = [], 0.0, 0
        for tok, prob in sorted(expected.items(), key=lambda kv: -kv[1]):
            if prob * n >= 5:
                bins.append((prob * n, counts.pop(tok, 0)))
            else:
                pooled_e, pooled_o = pooled_e + prob * n, pooled_o + counts.pop(tok, 0)
        assert not counts, f"sampled tokens the grammar or the target refuse: {counts}"
        bins.append((pooled_e, pooled_o))
        chi2 = sum((o - e) ** 2 / e for e, o in bins if e > 0)
        assert len(bins) >= 3 and chi2 < chi2_critical(len(bins) - 1), (chi2, bins)
    finally:
        spec.close()


def _exact_second_token(
    target: Path, prompt: list[int], gen: GenerationSettings
) -> dict[int, float]:
    """P(2nd token) under the grammar, from the target alone: sum over t1 of p(t1) p(t2 | t1),
    each p the target's distribution after the grammar's mask."""
    model = LlamaModel.open(ModelSettings(path=target, n_ctx=1024))
    grammar = Constraint(model.vocab, model.n_vocab, gen.grammar or "")
    try:
        model.decode(prompt, logits="last")
        p1 = distribution(grammar.constrain(model.logits(-1).copy(), greedy=False), gen)
        expected: dict[int, float] = {}
        for t1 in np.flatnonzero(p1):
            after = Constraint(model.vocab, model.n_vocab, gen.grammar or "")
            after.accept(int(t1))
            model.truncate(len(prompt))
            model.decode([int(t1)], logits="last")
            p2 = distribution(after.constrain(model.logits(-1).copy(), greedy=False), gen)
            after.close()
            for t2 in np.flatnonzero(p2):
                expected[int(t2)] = expected.get(int(t2), 0.0) + p1[t1] * p2[t2]
        return expected
    finally:
        grammar.close()
        model.close()


def test_a_grammar_the_parser_refuses_is_one_clear_error(real_models):
    e = engine(real_models["smollm2"], None)
    try:
        bad = GenerationSettings(max_tokens=5, grammar='root ::= "a" undefined-rule')
        with pytest.raises(GrammarError) as info:
            run(e.chat([Message("user", "Hi")], bad))
        assert "Undefined rule identifier 'undefined-rule'" in info.value.message
        assert info.value.message.startswith("grammar:") and "\n" not in info.value.message
        ok = run(e.chat([Message("user", "Hi")], GenerationSettings(max_tokens=3)))[0]
        assert ok.token_ids  # the engine goes on serving
    finally:
        e.close()
