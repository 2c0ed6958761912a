"""Grammar cost per token: time inside llama.cpp's grammar calls (apply, accept, clone, free)
against the whole time per generated token, for a reply to a 4-key JSON schema on a real model.

    PYTHONPATH=app python tests/bench/grammar_cost.py MODEL.gguf [--tokens 60] [--threads 1]

Not collected by pytest (no test_ prefix): a measurement, run by hand on a quiet machine."""

from __future__ import annotations

import argparse
import json
import time

import llama_cpp as lc
from llama_cpp.llama_grammar import json_schema_to_gbnf

from specchat.engine import constraint
from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.types import (
    DoneEvent,
    DraftMode,
    GenerationSettings,
    Message,
    ModelSettings,
    SpecSettings,
)

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "creator": {"type": "string"},
        "year": {"type": "integer"},
        "paradigms": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "creator", "year", "paradigms"],
}
PROMPT = "Describe the Python programming language as a JSON object."
SETTINGS = {
    "greedy": {},
    "T=1 (sample first)": {"temperature": 1.0, "seed": 1},
    "T=1 top-k 40": {"temperature": 1.0, "top_k": 40, "seed": 1},
    "T=1 top-p 0.9 (whole mask)": {"temperature": 1.0, "top_p": 0.9, "seed": 1},
}

spent = [0.0]


def timed(fn):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--tokens", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mode", choices=("none", "lookup"), default="none")
    args = ap.parse_args()
    constraint._apply = timed(constraint._apply)
    for name in ("llama_sampler_accept", "llama_sampler_clone", "llama_sampler_free"):
        setattr(lc, name, timed(getattr(lc, name)))
    mode = DraftMode.LOOKUP if args.mode == "lookup" else DraftMode.NONE
    engine = SpeculativeEngine.load(
        ModelSettings(path=args.model, n_ctx=1024, n_threads=args.threads),
        None,
        SpecSettings(mode=mode),
    )
    grammar = json_schema_to_gbnf(json.dumps(SCHEMA))
    try:
        for label, extra in SETTINGS.items():
            for constrained in (False, True):
                engine.reset_cache()
                gen = GenerationSettings(
                    max_tokens=args.tokens, grammar=grammar if constrained else None, **extra
                )
                spent[0] = 0.0
                t0 = time.perf_counter()
                done = None
                for event in engine.chat([Message("user", PROMPT)], gen):
                    if isinstance(event, DoneEvent):
                        done = event
                assert done is not None
                total = time.perf_counter() - t0 - done.stats.prompt_ms / 1000
                n = max(done.stats.generated_tokens, 1)
                print(
                    f"{label:<28} {'grammar' if constrained else 'free   '} "
                    f"{n:>3} tokens  {1000 * total / n:7.1f} ms/token  "
                    f"inside the grammar {1000 * spent[0] / n:6.2f} ms/token "
                    f"({spent[0] / total:5.1%})",
                    flush=True,
                )
    finally:
        engine.close()


if __name__ == "__main__":
    main()
