"""The speculative decoding algorithm: draft, verify, sample, and choose how far to draft.

`loop.py` is the generation loop (`SpeculativeEngine`); the rest are its steps, each testable on
its own. Built on the llama.cpp glue in `engine/llama/`, never the other way round."""
