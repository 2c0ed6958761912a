"""Tool-call syntaxes without a model: which one a chat template teaches, replies parsed into
calls (Hermes / Qwen, Llama 3.x, Mistral), content held back while it may begin a call."""

from __future__ import annotations

import json

import pytest

from specchat.engine.types import Origin, TokenEvent
from specchat.server.tools import ContentGate, ReplyShape, Syntax, parse_reply, syntax_of

NAMES = ("get_weather", "get_time")


@pytest.mark.parametrize(
    "template, syntax",
    [
        ("{{ '<tool_call>' }}{% for tool in tools %}{% endfor %}", Syntax.HERMES),
        ("<|start_header_id|>ipython<|end_header_id|>{{ '<|python_tag|>' }}", Syntax.LLAMA3),
        ('{"name": function name, "parameters": dictionary}', Syntax.LLAMA3),
        ("{{ '[AVAILABLE_TOOLS]' }}{{ '[TOOL_CALLS]' }}", Syntax.MISTRAL),
    ],
)
def test_syntax_of_a_template(template, syntax):
    assert syntax_of(template) is syntax


@pytest.mark.parametrize(
    "syntax, text, content, calls",
    [
        (Syntax.HERMES,
         'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
         '</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n'
         "</tool_call>",
         "Let me look.", [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "CET"})]),
        (Syntax.HERMES, '{"name": "get_time", "arguments": {"zone": "UTC"}}', None,
         [("get_time", {"zone": "UTC"})]),
        (Syntax.LLAMA3,
         '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}; '
         '{"name": "get_time", "parameters": {}}',
         None, [("get_weather", {"city": "Oslo"}), ("get_time", {})]),
        (Syntax.MISTRAL,
         '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Rome"}}]', None,
         [("get_weather", {"city": "Rome"})]),
    ],
)
def test_calls_are_parsed(syntax, text, content, calls):
    parsed = parse_reply(text, syntax, NAMES)
    assert parsed.content == content
    assert [(c.name, json.loads(c.arguments)) for c in parsed.calls] == calls
    assert len({c.id for c in parsed.calls}) == len(calls)


@pytest.mark.parametrize(
    "syntax, text",
    [
        (Syntax.HERMES, '<tool_call>\n{"name": "get_weather", "argu'),  # cut off
        (Syntax.HERMES, '{"name": "rm_rf", "arguments": {}}'),  # not a given tool
        (Syntax.HERMES, "Paris is sunny."),
        (Syntax.LLAMA3, '{"name": "get_weather", "parameters": "Paris"}'),
        (Syntax.MISTRAL, "[TOOL_CALLS]not json"),
    ],
)
def test_what_does_not_parse_stays_text(syntax, text):
    assert parse_reply(text, syntax, NAMES).calls == () and parse_reply(
        text, syntax, NAMES
    ).content == text


def test_content_is_held_back_only_while_it_may_begin_a_call():
    gate = ContentGate(Syntax.HERMES)
    sent = [gate.feed(part) for part in ["Sure", ", one moment <", "tool", "_call>\n{", '"a"}']]
    assert sent == ["Sure", ", one moment ", "", "", ""]
    plain = ContentGate(Syntax.HERMES)
    assert [plain.feed(p) for p in ["  ", "Hi <", "b>"]] == ["", "  Hi ", "<b>"]


def test_a_control_token_marker_is_seen_in_the_stream():
    """Mistral's [TOOL_CALLS] is a control token: the engine's text leaves it out."""
    shape = ReplyShape(Syntax.MISTRAL, lambda token: "[TOOL_CALLS]" if token == 5 else "", NAMES)
    events = [TokenEvent("", 5, Origin.TARGET),
              TokenEvent('[{"name": "get_time", "arguments": {}}]', 9, Origin.TARGET)]
    assert shape.content(events) == ""
    assert [c.name for c in shape.end().calls] == ["get_time"]


@pytest.mark.real
@pytest.mark.parametrize("syntax", list(Syntax))
@pytest.mark.parametrize("parallel", [True, False])
def test_call_grammars_parse_and_accept_a_call(real_models, syntax, parallel):
    """Each syntax's forced-call grammar is one llama.cpp's parser takes, and it accepts the
    text of a call in that syntax (fed token by token through the grammar sampler)."""
    from specchat.engine.llama.model import LlamaModel
    from specchat.engine.speculative.constraint import Constraint
    from specchat.engine.types import ModelSettings
    from specchat.server.tools import ToolRequest, call_grammar

    tool = {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}
    grammar = call_grammar(ToolRequest((tool,), "required", parallel), syntax)
    text = {
        Syntax.HERMES: '<tool_call>\n{"name": "get_time", "arguments": {"zone": "UTC"}}\n'
                       "</tool_call>",
        Syntax.LLAMA3: '{"name": "get_time", "parameters": {"zone": "UTC"}}',
        Syntax.MISTRAL: '[TOOL_CALLS][{"name": "get_time", "arguments": {"zone": "UTC"}}]',
    }[syntax]
    model = LlamaModel.open(ModelSettings(path=real_models["smollm2"]), vocab_only=True)
    constraint = Constraint(model.vocab, model.n_vocab, grammar)
    try:
        for token in model.tokenize(text, add_special=False, parse_special=False):
            constraint.accept(token)  # raises if the grammar refuses it
        assert [c.name for c in parse_reply(text, syntax, NAMES).calls] == ["get_time"]
    finally:
        constraint.close()
        model.close()
