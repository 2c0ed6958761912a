"""Grammar-constrained generation with llama.cpp's own grammar sampler, exact under speculation.

Every token the target picks is picked from its logits masked by the grammar (tokens the
grammar refuses get -inf). The grammar's state advances only through tokens the reply keeps:
a round's drafts are checked against a clone of the state (`trial`), and only the accepted
ones plus the target's own token reach the real state (`settle`); rejected drafts never touch
it. Greedy output is then the target alone's under the same grammar, token for token, and
sampling draws from the masked target distribution (speculative sampling keeps any p).

Masking the whole vocabulary (152k tokens for Qwen) is the grammar's cost, so it is done only
where a pick needs it, and each shortcut gives exactly the masked distribution:
- greedy: the unmasked argmax when the grammar allows it (then it is the masked argmax too);
- top-k sampling: the grammar checks the likeliest candidates only (max(4k, 256) of them);
  when k of them are allowed and the k-th allowed one is likelier than every token left out,
  masking those candidates alone gives the same top-k set, hence the same distribution, bit for
  bit;
- sampling with temperature, maybe top-k, no top-p or min-p, for the target's own pick (no
  draft, a deterministic draft's sample-and-match, the bonus token): llama.cpp's
  check-the-sample-first, made exact. The masked distribution is p(x) / Z on S, where p is
  the untruncated softmax, S the allowed tokens (with top-k: the k likeliest of them) and Z
  = p(S). Draw x from p; keep it when x is in S (the grammar allows it, and with top-k fewer than
  k allowed tokens are likelier), else mask and draw from p / Z. Then P(x) = p(x) + (1 - Z)
  p(x) / Z = p(x) / Z for every x in S. Drawing from the top-k-truncated p first, as llama.cpp
  does, would not be exact (its top k need not be S's), nor would any draw under top-p or min-p
  (the unmasked nucleus is not the masked one): those masks are built whole;
- a draft model's token is accepted with probability min(1, p(x) / q(x)) where p(x) is the
  masked probability, whose normaliser Z needs the whole mask (and so does the residual after a
  rejection): those rows are masked whole unless top-k applies.

llama.cpp aborts the process when a grammar is fed a token it refuses, so every token is
checked against the mask before it is accepted."""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import llama_cpp as lc
import numpy as np

from specchat.engine.llama.backend import captured_log
from specchat.engine.speculative.sampling import distribution, greedy, sample
from specchat.engine.types import GenerationSettings
from specchat.errors import SpecchatError

Rows = Callable[[int], np.ndarray]  # row index -> target logits
TOP_K_CANDIDATES = 256  # top-k sampling: at least this many of the likeliest tokens are checked

# llama_token_data {int32 id; float logit; float p}, as a numpy record for the whole vocabulary
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


# what llama.cpp's GBNF parser prints (with fprintf, not its log) when it refuses a grammar
_PARSE_ERROR = re.compile(r"error parsing grammar: ([^\n]{1,300})")


class GrammarError(SpecchatError):
    """A grammar llama.cpp's GBNF parser refuses."""


class Constraint:
    """One reply's grammar over one model's vocabulary."""

    def __init__(self, vocab: ctypes.c_void_p, n_vocab: int, gbnf: str) -> None:
        self._sampler: ctypes.c_void_p | None = None
        self._trial: ctypes.c_void_p | None = None  # the state while a round's drafts are checked
        with captured_log() as lines, _stderr_copied() as printed:
            sampler = lc.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
        if not sampler:
            said = _PARSE_ERROR.search(printed.getvalue())
            reasons = [said.group(1)] if said else [line for line in lines if line]
            why = "; ".join(reasons) or "it does not parse"
            raise GrammarError(f"grammar: llama.cpp's GBNF parser refused it ({why})")
        self._sampler = sampler
        self._trial_kept = 0  # drafted tokens the trial state has accepted
        self._all = np.zeros(n_vocab, dtype=_TOKEN_DATA)
        self._all["id"] = np.arange(n_vocab, dtype=np.int32)
        self._one = np.zeros(1, dtype=_TOKEN_DATA)

    def close(self) -> None:
        for sampler in (self._sampler, self._trial):
            if sampler:
                lc.llama_sampler_free(sampler)
        self._sampler = self._trial = None

    def __del__(self) -> None:  # the reply is over: free the samplers (best effort at exit)
        with contextlib.suppress(Exception):
            self.close()

    # ---- the target's own pick ---------------------------------------------------------------

    def constrain(self, logits: np.ndarray, greedy: bool) -> np.ndarray:
        """Logits to pick the next token from, under the grammar's current state."""
        return self._constrain(self._sampler, logits, greedy)

    def pick(
        self, logits: np.ndarray, settings: GenerationSettings, rng: np.random.Generator
    ) -> int:
        """The target's own token from `logits` under the grammar's current state, drawn from
        the masked distribution (not yet accepted)."""
        return self._pick(self._sampler, logits, settings, rng)

    def accept(self, token: int) -> None:
        """The reply keeps `token` (picked from `constrain`'s logits, or by `pick`)."""
        _accept(self._sampler, token, self._one)

    # ---- a round of drafts -------------------------------------------------------------------

    def trial(
        self,
        rows: Rows,
        draft: Sequence[int],
        settings: GenerationSettings,
        rng: np.random.Generator,
    ) -> tuple[Rows, Callable[[int], int]]:
        """For verifying `draft`: `rows` masked (row i under the state after draft[:i]), and
        the target's own pick at row i under that state (`pick`'s shortcuts). Verification
        asks for row i only once it has kept draft[:i] (rows are read in order)."""
        self._drop_trial()
        trial = lc.llama_sampler_clone(self._sampler)
        self._trial, self._trial_kept = trial, 0

        def at(i: int) -> ctypes.c_void_p:
            while self._trial_kept < i:
                _accept(trial, draft[self._trial_kept], self._one)
                self._trial_kept += 1
            return trial

        def masked(i: int) -> np.ndarray:
            return self._constrain(at(i), rows(i), settings)

        def own(i: int) -> int:
            return self._pick(at(i), rows(i), settings, rng)

        return masked, own

    def settle(self, draft: Sequence[int], accepted: int, next_token: int) -> None:
        """The round kept draft[:accepted] and then next_token: the real state takes exactly
        those (the trial state when it holds them, else a replay on a fresh clone)."""
        if self._trial is None or self._trial_kept != accepted:
            self._drop_trial()
            self._trial = lc.llama_sampler_clone(self._sampler)
            for token in draft[:accepted]:
                _accept(self._trial, token, self._one)
        lc.llama_sampler_free(self._sampler)
        self._sampler, self._trial = self._trial, None
        self.accept(next_token)

    def _drop_trial(self) -> None:
        if self._trial:
            lc.llama_sampler_free(self._trial)
        self._trial = None

    # ---- masking -----------------------------------------------------------------------------

    def _constrain(
        self,
        sampler: ctypes.c_void_p,
        logits: np.ndarray,
        settings: GenerationSettings | bool,
    ) -> np.ndarray:
        """Logits that give the masked distribution under `settings` (True: greedy, False:
        any sampling). Greedy: the raw row when its argmax is allowed (the masked argmax is then
        the same token; llama.cpp's common sampler checks the pick first too). Top-k: the top
        candidates masked (`_top_k_masked`). Else the whole row masked."""
        is_greedy = settings if isinstance(settings, bool) else settings.greedy
        if is_greedy and _allows(sampler, int(np.argmax(logits)), self._one):
            return logits
        if not isinstance(settings, bool) and not is_greedy:
            masked = self._top_k_masked(sampler, logits, settings.top_k)
            if masked is not None:
                return masked
        return self._mask(sampler, logits)

    def _pick(
        self,
        sampler: ctypes.c_void_p,
        logits: np.ndarray,
        settings: GenerationSettings,
        rng: np.random.Generator,
    ) -> int:
        """A draw from the masked distribution: sampling without truncation draws from the
        unmasked one first and keeps an allowed draw (see the module's note: exact)."""
        if settings.greedy:
            return greedy(self._constrain(sampler, logits, settings))
        k = settings.top_k if 0 < settings.top_k < len(logits) else 0
        masked = self._top_k_masked(sampler, logits, k) if k else None
        if masked is None and settings.top_p >= 1.0 and settings.min_p <= 0.0:
            # sample first, from the untruncated p: keep an allowed draw that top-k would keep
            token = sample(distribution(logits, replace(settings, top_k=0)), rng)
            if _allows(sampler, token, self._one) and (
                not k or self._in_top_k(sampler, logits, token, k)
            ):
                return token
        if masked is None:
            masked = self._mask(sampler, logits)
        return sample(distribution(masked, settings), rng)

    def _top_k_masked(
        self, sampler: ctypes.c_void_p, logits: np.ndarray, k: int
    ) -> np.ndarray | None:
        """For top-k sampling: the row with every token but the allowed ones among the
        likeliest max(4k, TOP_K_CANDIDATES) at -inf, when that set holds k allowed tokens and
        its k-th likeliest allowed token is likelier than every token outside it (then the
        top-k set after masking, and the distribution, are the whole mask's); else None."""
        n = len(logits)
        m = max(4 * k, TOP_K_CANDIDATES)
        if k <= 0 or k >= n or m >= n:
            return None
        ids = np.argpartition(logits, n - m)[n - m :]
        cand = np.zeros(m, dtype=_TOKEN_DATA)
        cand["id"] = ids
        cand["logit"] = logits[ids]
        floor = float(cand["logit"].min())
        _apply(sampler, cand)
        allowed = cand[np.isfinite(cand["logit"])]
        if len(allowed) < k:
            return None
        kth = float(np.partition(allowed["logit"], len(allowed) - k)[len(allowed) - k])
        if not kth > floor:
            return None  # a token left out may tie the k-th: mask the whole row
        out = np.full(n, -np.inf, dtype=logits.dtype)
        out[allowed["id"]] = allowed["logit"]
        return out

    def _in_top_k(self, sampler: ctypes.c_void_p, logits: np.ndarray, token: int, k: int) -> bool:
        """Whether an allowed `token` is among the k likeliest allowed ones (ties with the k-th
        included, as top-k keeps them): fewer than k allowed tokens are likelier. Always
        answered (never a guess: the sample-first draw is exact only if every x in S is kept);
        a draw is rarely deep in the ranking, so few tokens are checked."""
        above = np.flatnonzero(logits > logits[token])
        if len(above) < k:
            return True
        cand = np.zeros(len(above), dtype=_TOKEN_DATA)
        cand["id"] = above
        _apply(sampler, cand)
        return int(np.isfinite(cand["logit"]).sum()) < k

    def _mask(self, sampler: ctypes.c_void_p, logits: np.ndarray) -> np.ndarray:
        cand = self._all
        cand["logit"] = logits[: len(cand)]
        _apply(sampler, cand)
        return cand["logit"].copy()


def _apply(sampler: ctypes.c_void_p, cand: np.ndarray) -> None:
    """The grammar sets the logit of every token it refuses to -inf (in place)."""
    array = lc.llama_token_data_array(
        data=cand.ctypes.data_as(lc.llama_token_data_p),
        size=len(cand),
        selected=-1,
        sorted=False,
    )
    lc.llama_sampler_apply(sampler, ctypes.byref(array))


def _allows(sampler: ctypes.c_void_p, token: int, one: np.ndarray) -> bool:
    one["id"], one["logit"] = token, 0.0
    _apply(sampler, one)
    return bool(np.isfinite(one["logit"][0]))


def _accept(sampler: ctypes.c_void_p, token: int, one: np.ndarray) -> None:
    if not _allows(sampler, token, one):  # llama.cpp would abort the process
        raise SpecchatError(f"internal error: the grammar refuses token {token}")
    lc.llama_sampler_accept(sampler, token)


@contextlib.contextmanager
def _stderr_copied() -> Iterator[io.StringIO]:
    """What the process writes to file descriptor 2 meanwhile (llama.cpp's parser prints its
    reason there), passed on to the real stderr afterwards: nothing anyone writes is lost."""
    copied = io.StringIO()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as spool:
        os.dup2(spool.fileno(), 2)
        try:
            yield copied
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            spool.seek(0)
            data = spool.read()
            if data:
                os.write(2, data)
            copied.write(data.decode(errors="replace"))
