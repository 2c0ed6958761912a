"""Chat templates are code from the internet: llama.cpp's reference cases, the system-prompt
fallback, bounded rendering, one clear error for any failure, loop controls, and roles that keep
alternating in what the app sends after a failed, empty or cancelled reply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

import specchat.engine.llama.template as template_module
from specchat.engine.llama.template import ChatTemplate, TemplateError, TemplateLimitError
from specchat.engine.types import GenerationSettings, Message
from specchat.store.records import ChatSettings, MessageRecord, MessageStatus
from specchat.tui.conversation import engine_messages

from .conftest import load, run

DATA = Path(__file__).parent / "data" / "llama_cpp_chat_template_cases.json"
REFERENCE = json.loads(DATA.read_text(encoding="utf-8"))
# GigaChat is the one case llama.cpp itself does not render with Jinja (supported_with_jinja =
# false: it needs `additional_special_tokens` in the context), so it has no Jinja expectation.
JINJA_CASES = [c for c in REFERENCE["cases"] if c["supported_with_jinja"]]
TEMPLATES = {c["name"].split(" (")[0]: c["template"] for c in REFERENCE["cases"]}
GEMMA_7B = TEMPLATES["google/gemma-7b-it"]  # raises on a system message; strict alternation
MISTRAL_V02 = TEMPLATES["mistralai/Mistral-7B-Instruct-v0.2"]  # same, with [INST]
PHI3_MINI = TEMPLATES["Phi-3-mini"]  # silently drops system messages
CHATML = TEMPLATES["teknium/OpenHermes-2.5-Mistral-7B"]


def conversation(pairs: list[list[str]]) -> list[Message]:
    return [Message(role, content) for role, content in pairs]  # type: ignore[arg-type]


# --- llama.cpp's own test cases are the reference --------------------------------------------
def test_reference_copy_names_its_source():
    assert "vendor/llama.cpp/tests/test-chat-template.cpp" in REFERENCE["source"]
    assert REFERENCE["llama_cpp_python"] in REFERENCE["source"]
    assert len(REFERENCE["source_sha256"]) == 64
    assert len(JINJA_CASES) == 35 and len(REFERENCE["cases"]) == 36


@pytest.mark.parametrize("case", JINJA_CASES, ids=[c["name"][:48] for c in JINJA_CASES])
def test_llama_cpp_reference_case(case):
    messages = conversation(REFERENCE["conversation"] + case["extra_conversation"])
    t = ChatTemplate(case["template"], case["bos_token"], case["eos_token"])
    assert t.render(messages, add_generation_prompt=True) == case["expected_jinja"]


# --- system prompts on templates that do not support them ------------------------------------
SYSTEM_AND_USER = [Message("system", "Be brief."), Message("user", "Hi")]


def test_system_prompt_joins_first_user_message_when_template_raises_on_it():
    t = ChatTemplate(GEMMA_7B)
    assert not t.supports_system_role
    assert t.render(SYSTEM_AND_USER).startswith("<start_of_turn>user\nBe brief.\nHi<end_of_turn>")


def test_system_prompt_joins_first_user_message_when_template_drops_it():
    t = ChatTemplate(PHI3_MINI)
    assert not t.supports_system_role
    assert t.render(SYSTEM_AND_USER) == "<|user|>\nBe brief.\nHi<|end|>\n<|assistant|>\n"


def test_system_prompt_kept_where_template_renders_it():
    t = ChatTemplate(CHATML)
    assert t.supports_system_role
    assert t.render(SYSTEM_AND_USER).startswith("<|im_start|>system\nBe brief.<|im_end|>\n")


def test_lone_system_prompt_is_dropped_like_llama_cpp():
    t = ChatTemplate(PHI3_MINI, bos_token="<s>")
    assert t.render([Message("system", "Be brief.")]) == "<s>"


# --- any failure is one clear error naming the model file ------------------------------------
@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("{{ messages + 1 }}", "TypeError"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ 10.0 ** 400 }}", "OverflowError"),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "RecursionError"),
        ("{{ 10 ** 5000 }}", "ValueError"),
        ("{{ messages.__class__.__mro__ }}", "SecurityError"),
        ("{{ messages[0].content.nope() }}", "UndefinedError"),
        ("{{ raise_exception('no system role') }}", "no system role"),
    ],
)
def test_render_failure_is_one_clear_error(source, kind):
    with pytest.raises(TemplateError) as err:
        ChatTemplate(source, name="model.gguf").render([Message("user", "hi")])
    message = str(err.value)
    assert "model.gguf" in message and kind in message and "\n" not in message


def test_memory_error_is_a_template_error():
    t = ChatTemplate("{{ grow() }}", name="model.gguf")
    t._env.globals["grow"] = _raise_memory_error
    with pytest.raises(TemplateError, match=r"model\.gguf.*MemoryError"):
        t.render([Message("user", "hi")])


def _raise_memory_error() -> None:
    raise MemoryError


def test_keyboard_interrupt_is_not_swallowed():
    t = ChatTemplate("{{ stop() }}")
    t._env.globals["stop"] = _raise_keyboard_interrupt
    with pytest.raises(KeyboardInterrupt):
        t.render([Message("user", "hi")])


def _raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def test_syntax_error_names_the_file():
    with pytest.raises(TemplateError, match=r"model\.gguf does not parse"):
        ChatTemplate("{% for %}", name="model.gguf")


def test_sandbox_stays_immutable():
    for source in ("{{ messages.append(1) }}", "{% set _ = messages.pop() %}",
                   "{% set _ = messages[0].update({'role': 'x'}) %}"):
        with pytest.raises(TemplateError, match="unsafe"):
            ChatTemplate(source).render([Message("user", "hi")])


# --- bounded rendering -----------------------------------------------------------------------
HUGE = [
    "{{ 'x' * 10**10 }}",
    "{{ 'x' * 10000000000 }}",
    "{{ ([1] * 4000000) * 1000 }}",
    "{% set n = 9 ** 999999 %}{{ n > 0 }}",
    "{% for i in range(10**9) %}{% endfor %}",
    "{{ 'x'|center(10000000000) }}",
    "{{ 'x'.ljust(3999999) * 1000 }}",
    "{{ ('y' * 4000000).join(range(100000)|map('string')) }}",
    "{{ range(100000)|join('y' * 4000000) }}",
    "{{ ('a' * 1000000).replace('a', 'b' * 1000) }}",
    "{{ ('a' * 1000000)|replace('', 'b' * 30) }}",
    "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    "{% set ns = namespace(l=[]) %}{% set s = 'x' * 4000000 %}"
    "{% for i in range(100000) %}{% set ns.l = ns.l + [s ~ i] %}{% endfor %}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '%*d' % (999999999, 1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '%999999999s'|format(1) }}",
    "{{ ('a\n' * 1000000)|indent(1000) }}",
    "{{ ('a ' * 1000000)|wordwrap(2, wrapstring='z' * 100000) }}",
    "{{ messages|tojson(indent=1000000000) }}",
    "{{ ('\t' * 1000000).expandtabs(1000) }}",
    "{{ ('a' * 1000000).translate({97: 'b' * 1000}) }}",
    "{{ range(100000)|map('string')|map('list')|sum(start=[])|length }}",
    "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}",
    "{% for i in range(100000) %}{% set x %}{{ 'y' * 3000000 }}{% endset %}{% endfor %}",
    # small containers whose text is gigantic: the same large string many times
    "{% set s = 'x' * 4000000 %}{{ [s] * 100000 }}",
    "{% set s = 'x' * 4000000 %}{{ ([s] * 1000)|tojson }}",
    "{% set s = 'x' * 4000000 %}{{ 'a' ~ ([s] * 1000) }}",
    "{% set s = 'x' * 4000000 %}{{ ([[s] * 100] * 1000)|map('string')|list|length }}",
    "{% set s = 'x' * 4000000 %}{{ '%s' % ([s] * 1000,) }}",
    "{% set s = 'x' * 4000000 %}{{ '{}'.format([s] * 1000) }}",
    "{% set s = 'x' * 4000000 %}{% set ns = namespace(a=[s] * 1000) %}{{ ns }}",
    "{% set s = 'x' * 4000000 %}{{ [[s] * 1000]|join(',') }}",
]


@pytest.mark.parametrize("source", HUGE)
def test_gigantic_values_are_refused_before_they_are_built(source):
    t = ChatTemplate(source, name="model.gguf")  # no folding of huge constants at parse time
    with pytest.raises(TemplateLimitError, match=r"model\.gguf was stopped"):
        t.render([Message("user", "hi")])


ENDLESS = [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% set s = 'ab' * 2000000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n < 60 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}"
    "{{ f(0) }}",
]


@pytest.mark.parametrize("source", ENDLESS)
def test_endless_templates_are_stopped(source, monkeypatch):
    monkeypatch.setattr(template_module, "RENDER_SECONDS", 0.5)
    with pytest.raises(TemplateLimitError, match=r"ran longer than 0\.5 s"):
        ChatTemplate(source, name="model.gguf").render(SYSTEM_AND_USER)


def test_limits_scale_with_the_conversation():
    """A long chat is not a gigantic value: the limits grow with the input."""
    long = "word " * 2_000_000  # 10 MB, over the 4 MiB floor
    messages = [Message("user", long), Message("assistant", long), Message("user", "and?")]
    out = ChatTemplate(CHATML).render(messages)
    assert out.count(long) == 2


def test_self_referencing_namespace_prints():
    t = ChatTemplate("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}")
    assert t.render([Message("user", "hi")]) == "<Namespace {'me': <Namespace {...}>}>"


# --- Hugging Face's loop controls --------------------------------------------------------------
def test_loop_controls():
    t = ChatTemplate(
        "{% for m in messages %}{% if m.content == 'skip' %}{% continue %}{% endif %}"
        "{{ m.content }}{% if m.content == 'stop' %}{% break %}{% endif %}{% endfor %}"
    )
    messages = conversation([["user", "a"], ["assistant", "skip"], ["user", "stop"], ["user", "b"]])
    assert t.render(messages) == "astop"


# --- roles keep alternating after failed, empty or cancelled replies -------------------------
def record(i: int, role: str, content: str, status=MessageStatus.COMPLETE) -> MessageRecord:
    return MessageRecord(id=i, chat_id=1, role=role, content=content, status=status)


AFTER_ERROR = [
    record(1, "user", "Hi"),
    record(2, "assistant", "Hello!"),
    record(3, "user", "Tell me a story"),
    record(4, "assistant", "Once", MessageStatus.ERROR),
    record(5, "user", "Shorter, please"),
]
AFTER_EMPTY = [
    record(1, "user", "Hi"),
    record(2, "assistant", ""),
    record(3, "user", "Hello?"),
]
AFTER_CANCEL = [
    record(1, "user", "Hi"),
    record(2, "assistant", "", MessageStatus.CANCELLED),
    record(3, "user", "Actually, say bye"),
    record(4, "assistant", "By", MessageStatus.CANCELLED),
    record(5, "user", "Thanks"),
]


def roles(messages: list[Message]) -> list[str]:
    return [m.role for m in messages]


def test_failed_exchange_is_left_out():
    out = engine_messages(ChatSettings(system_prompt="Be brief."), AFTER_ERROR)
    assert out == conversation([["system", "Be brief."], ["user", "Hi"],
                                ["assistant", "Hello!"], ["user", "Shorter, please"]])


def test_user_messages_around_an_empty_reply_become_one_turn():
    assert engine_messages(ChatSettings(), AFTER_EMPTY) == [Message("user", "Hi\n\nHello?")]


def test_cancelled_replies_keep_their_text_and_roles_alternate():
    out = engine_messages(ChatSettings(), AFTER_CANCEL)
    assert out == conversation([["user", "Hi\n\nActually, say bye"], ["assistant", "By"],
                                ["user", "Thanks"]])


@pytest.mark.parametrize("records", [AFTER_ERROR, AFTER_EMPTY, AFTER_CANCEL],
                         ids=["error", "empty", "cancelled"])
@pytest.mark.parametrize("source", [GEMMA_7B, MISTRAL_V02], ids=["gemma", "mistral-v0.2"])
def test_strict_templates_accept_every_later_send(records, source):
    messages = engine_messages(ChatSettings(system_prompt="Be brief."), records)
    turns = roles(messages)[1:]
    assert turns == ["user", "assistant"] * (len(turns) // 2) + ["user"]
    prompt = ChatTemplate(source, eos_token="</s>").render(messages)
    assert "Be brief." in prompt


def test_engine_with_strict_template_answers_after_an_error(tiny_target):
    """Real llama.cpp: a Gemma-style template (no system role, strict alternation) on a chat
    whose previous reply failed, with a system prompt."""
    engine = load(tiny_target)
    try:
        engine.template = ChatTemplate(GEMMA_7B, name="target.gguf")
        messages = engine_messages(ChatSettings(system_prompt="Be brief."), AFTER_ERROR)
        done, _ = run(engine.chat(messages, GenerationSettings(max_tokens=4)))
        assert done.stats.generated_tokens > 0
    finally:
        engine.close()


# --- the real GGUFs' own templates -------------------------------------------------------------
def _plain_hf_render(source: str, messages: list[Message], bos: str, eos: str) -> str:
    """The reference renderer: Jinja configured as Hugging Face's apply_chat_template."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = _raise_memory_error
    tmpl = env.from_string(source)
    return tmpl.render(messages=[{"role": m.role, "content": m.content} for m in messages],
                       add_generation_prompt=True, bos_token=bos, eos_token=eos)


@pytest.mark.real
@pytest.mark.parametrize("name", ["qwen", "smollm2"])
def test_real_gguf_templates_render_as_hugging_face_does(real_models, name):
    from specchat.engine.llama.model import LlamaModel
    from specchat.engine.types import ModelSettings

    model = LlamaModel.open(ModelSettings(path=real_models[name]), vocab_only=True)
    try:
        source = model.chat_template()
        bos = model.token_text(model.bos).decode() if model.bos >= 0 else ""
        eos = model.token_text(model.eos).decode() if model.eos >= 0 else ""
    finally:
        model.close()
    assert source
    messages = engine_messages(ChatSettings(system_prompt="Be brief."), AFTER_CANCEL)
    t = ChatTemplate(source, bos, eos, name=real_models[name].name)
    assert t.supports_system_role
    assert t.render(messages) == _plain_hf_render(source, messages, bos, eos)


def test_numbers_in_plain_text_are_not_format_widths():
    t = ChatTemplate("{{ 'Call 5551234567 about %s' % 'it' }}{{ ' {0} 99999999999'.format(1) }}")
    assert t.render([Message("user", "hi")]) == "Call 5551234567 about it 1 99999999999"


def test_probe_finds_a_system_message_the_template_transforms():
    t = ChatTemplate("{% for m in messages %}{{ m.role }}: {{ m.content|upper }}\n{% endfor %}")
    assert t.supports_system_role
    assert t.render(SYSTEM_AND_USER) == "system: BE BRIEF.\nuser: HI\n"
