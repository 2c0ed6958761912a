"""A stand-in for LlamaModel with the few members the prompt cache uses: its state is bytes
derived from its tokens, so a restore can be checked byte for byte without llama.cpp."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BYTES_PER_TOKEN = 64


def state_of(tokens: Sequence[int]) -> bytearray:
    return bytearray(np.repeat(np.asarray(tokens, dtype=np.int32), BYTES_PER_TOKEN // 4).tobytes())


class StubModel:
    keeps_state = False
    read_ms_per_token = 2.0

    def __init__(self, tokens: Sequence[int] = ()) -> None:
        self.tokens = list(tokens)
        self.loaded: list[int] = []  # token counts of each state loaded

    def save_state(self) -> bytearray:
        return state_of(self.tokens)

    def load_state(self, data: bytearray, tokens: Sequence[int]) -> bool:
        if bytes(data) != bytes(state_of(tokens)):
            self.tokens = []
            return False
        self.tokens = list(tokens)
        self.loaded.append(len(tokens))
        return True

    def truncate(self, n: int) -> None:
        del self.tokens[n:]
