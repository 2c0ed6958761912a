"""Grammar-constrained generation under speculation (speculative/constraint.py) on real models:
greedy output equals the target alone under the same grammar, token for token, with the suffix
drafter and with a draft model; sampling keeps the masked target distribution; a grammar the
parser refuses is a clear error."""

from __future__ import annotations

import json

import pytest

from specchat.engine.speculative.constraint import GrammarError
from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.types import (
    DraftMode,
    GenerationSettings,
    Message,
    ModelSettings,
    SpecSettings,
)

from .conftest import run
from .distribution import assert_second_token_distribution
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
    with a draft model, against the exact masked target distribution (distribution.py)."""
    target = real_models["smollm2"]
    grammar = 'root ::= [a-z]+ " " [a-z]+'  # lowercase words: most of the mass is masked away
    gen = GenerationSettings(temperature=1.0, top_k=8, max_tokens=3, grammar=grammar)
    spec = engine(target, derived_models["smollm2-q4_0"], draft_max=3, adaptive=False)
    try:
        assert_second_token_distribution(
            spec, target, n=300, gen=gen, messages=[Message("user", "Say two words.")]
        )
    finally:
        spec.close()


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


def test_sampling_without_truncation_keeps_the_masked_distribution(real_models, derived_models):
    """Temperature alone: the target's own picks (the first token, the bonus) take llama.cpp's
    sample-first shortcut, a drafted token's row the whole mask; the 2nd token still follows the
    exact masked distribution. A grammar of few words keeps the exact computation small."""
    target = real_models["smollm2"]
    grammar = 'root ::= ("yes" | "no" | "maybe") " " ("red" | "green" | "blue")'
    gen = GenerationSettings(temperature=1.0, max_tokens=3, grammar=grammar)
    spec = engine(target, derived_models["smollm2-q4_0"], draft_max=3, adaptive=False)
    try:
        assert_second_token_distribution(
            spec, target, n=300, gen=gen, messages=[Message("user", "Answer, then a colour.")]
        )
    finally:
        spec.close()
