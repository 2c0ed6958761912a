"""Log-probabilities of emitted tokens under the target's own distribution (its raw logits,
temperature 1, before any sampling transform or grammar mask), for drafted and target-picked
tokens alike: the row that verified a token is the row the target alone would have used."""

from __future__ import annotations

import numpy as np

from specchat.engine.types import TokenLogprob

MAX_TOP = 20  # as OpenAI's top_logprobs


def token_logprob(logits: np.ndarray, token: int, top: int) -> TokenLogprob:
    """`token`'s log-probability and the `top` likeliest tokens' (most likely first)."""
    x = logits.astype(np.float64)
    peak = x.max()
    total = peak + np.log(np.exp(x - peak).sum())
    best: tuple[tuple[int, float], ...] = ()
    if top > 0:
        k = min(top, len(x))
        idx = np.argpartition(-x, k - 1)[:k]
        idx = idx[np.argsort(-x[idx], kind="stable")]
        best = tuple((int(i), float(x[i] - total)) for i in idx)
    return TokenLogprob(float(x[token] - total), best)
