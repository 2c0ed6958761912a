"""Regenerate llama_cpp_chat_template_cases.json from llama.cpp's own chat-template tests.

The source is `vendor/llama.cpp/tests/test-chat-template.cpp` in the llama-cpp-python sdist:

    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/sdist
    tar xzf /tmp/sdist/llama_cpp_python-0.3.36.tar.gz -C /tmp/sdist
    python tests/engine/data/extract_llama_cpp_cases.py \
        /tmp/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp/tests/test-chat-template.cpp 0.3.36

It reads the `conversation` and the `test_cases` initialisers of `main_automated_tests` (C++
string literals, positional fields of `struct TestCase`) and writes them as JSON, with the
expected Jinja output resolved as llama.cpp's test does (`expected_output_jinja`, or
`expected_output` when that is empty)."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).with_name("llama_cpp_chat_template_cases.json")
FIELDS = (
    "name", "template_str", "expected_output", "expected_output_jinja", "bos_token",
    "eos_token", "supported_with_jinja", "extra_conversation",
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
_TOKEN = re.compile(
    r'\s+|//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\])*"|[{},()]|U8C|true|false|[A-Za-z_]\w*',
    re.S,
)


def _unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt not in _ESCAPES:
            raise ValueError(f"unsupported C escape \\{nxt}")
        out.append(_ESCAPES[nxt])
        i += 2
    return "".join(out)


def _tokens(src: str) -> list[object]:
    """The tokens of the brace-enclosed initialiser at the start of src."""
    out: list[object] = []
    pos, depth = 0, 0
    while pos < len(src) and not (depth == 0 and out):
        m = _TOKEN.match(src, pos)
        if m is None:
            raise ValueError(f"cannot read C++ at {src[pos:pos + 40]!r}")
        tok, pos = m.group(0), m.end()
        if tok.isspace() or tok.startswith(("//", "/*")) or tok in ("U8C", "(", ")"):
            continue
        depth += {"{": 1, "}": -1}.get(tok, 0)
        if tok.startswith('"'):
            out.append(("str", _unescape(tok[1:-1])))
        elif tok in ("true", "false"):
            out.append(("bool", tok == "true"))
        else:
            out.append(tok)
    return out


def _parse(tokens: list[object], i: int) -> tuple[object, int]:
    tok = tokens[i]
    if tok == "{":
        items: list[object] = []
        i += 1
        while tokens[i] != "}":
            item, i = _parse(tokens, i)
            items.append(item)
            if tokens[i] == ",":
                i += 1
        return items, i + 1
    if isinstance(tok, tuple):
        value = tok[1]
        # adjacent string literals concatenate
        while isinstance(value, str) and isinstance(tokens[i + 1], tuple):
            i += 1
            value += tokens[i][1]  # type: ignore[index,operator]
        return value, i + 1
    raise ValueError(f"unexpected token {tok!r}")


def _initialiser(src: str, opener: str) -> list[object]:
    start = src.index(opener) + len(opener) - 1
    tokens = _tokens(src[start:])
    value, _ = _parse(tokens, 0)
    assert isinstance(value, list)
    return value


def extract(cpp: Path, version: str) -> dict[str, object]:
    src = cpp.read_text(encoding="utf-8")
    body = src[src.index("int main_automated_tests(void)"):]
    conversation = _initialiser(body, "std::vector<llama_chat_message> conversation {")
    raw_cases = _initialiser(body, "std::vector<TestCase> test_cases {")
    cases = []
    for raw in raw_cases:
        assert isinstance(raw, list)
        case = dict(zip(FIELDS, raw, strict=False))  # trailing fields may be left out
        case.setdefault("bos_token", "")
        case.setdefault("eos_token", "")
        case.setdefault("supported_with_jinja", True)
        case.setdefault("extra_conversation", [])
        cases.append({
            "name": case["name"],
            "template": case["template_str"],
            "bos_token": case["bos_token"],
            "eos_token": case["eos_token"],
            "supported_with_jinja": case["supported_with_jinja"],
            "extra_conversation": case["extra_conversation"],
            "expected_jinja": case["expected_output_jinja"] or case["expected_output"],
        })
    return {
        "source": "vendor/llama.cpp/tests/test-chat-template.cpp (main_automated_tests), "
        f"llama-cpp-python {version} sdist",
        "source_sha256": hashlib.sha256(cpp.read_bytes()).hexdigest(),
        "llama_cpp_python": version,
        "regenerate": "python tests/engine/data/extract_llama_cpp_cases.py <cpp file> <version>",
        "conversation": conversation,
        "cases": cases,
    }


def main(argv: list[str]) -> None:
    data = extract(Path(argv[1]), argv[2])
    OUT.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{len(data['cases'])} cases -> {OUT}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv)
