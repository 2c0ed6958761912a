"""specchat: terminal chat for local LLMs, made faster with speculative decoding."""

__version__ = "0.1.0"
