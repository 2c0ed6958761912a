"""Measuring and calibrating a calibrated pair's agreement (real llama.cpp runs).

Agreement is the per-token greedy agreement along the target's own greedy continuation: the
fraction of positions where the draft's argmax equals the target's. It is what a greedy
speculative run accepts per drafted token (its α).

Calibration searches the total scale delta (see make_pair.py) on a cheap proxy target with one
copy per block, by regula falsi on log(delta), patching the copies' scales in place between trials
(the file is written once); then the full-cost target is written with the delta found."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specchat.bench.make_pair import _BLOCK_RE, SCALED_PARTS, epsilons, scale_tensor
from specchat.bench.prompts import BenchPrompt, builtin_set
from specchat.engine.types import ModelSettings

Progress = Callable[[str], None]
VERIFY_CHUNK = 32  # logits rows per draft pass (batched and one-token logits agree up to ~33)


@dataclass(frozen=True)
class Trial:
    delta: float
    agreement: float


def calibration_prompts() -> list[BenchPrompt]:
    return builtin_set("chat") + builtin_set("code")


def _open(path: Path, n_threads: int | None):
    from specchat.engine.llama.model import LlamaModel

    return LlamaModel.open(ModelSettings(path=path, n_ctx=1024, n_batch=256, n_threads=n_threads))


def _prompt_tokens(model, prompt: BenchPrompt) -> list[int]:
    from specchat.engine.llama.template import CHATML, ChatTemplate

    bos = model.token_text(model.bos).decode("utf-8", "replace") if model.bos >= 0 else ""
    eos = model.token_text(model.eos).decode("utf-8", "replace") if model.eos >= 0 else ""
    template = ChatTemplate(model.chat_template() or CHATML, bos, eos, name=model.path.name)
    text = template.render(prompt.messages)
    return model.tokenize(text, add_special=not text.startswith(bos) if bos else True)


def measure_agreement(draft: Path, target: Path, prompts: Sequence[BenchPrompt], n_tokens: int,
                      n_threads: int | None = None) -> float:
    """Greedy agreement of draft with target over the target's greedy continuations."""
    tm, dm = _open(target, n_threads), _open(draft, n_threads)
    try:
        same = total = 0
        for prompt in prompts:
            toks = _prompt_tokens(tm, prompt)
            tm.reset()
            tm.decode(toks, "last")
            gen: list[int] = []
            for _ in range(n_tokens):
                t = int(np.argmax(tm.logits(-1)))
                gen.append(t)
                if tm.is_eog(t):
                    break
                tm.decode([t], "last")
            dm.reset()
            dm.decode(toks[:-1], None)
            inputs = [toks[-1], *gen[:-1]]
            for start in range(0, len(inputs), VERIFY_CHUNK):
                chunk = inputs[start : start + VERIFY_CHUNK]
                dm.decode(chunk, "all")
                for i in range(len(chunk)):
                    same += int(int(np.argmax(dm.logits(i))) == gen[start + i])
                    total += 1
        return same / total if total else 1.0
    finally:
        tm.close()
        dm.close()


def patch_delta(target: Path, copies: Sequence[int], draft: Path, delta: float) -> None:
    """Rewrite, in place, the scaled copies' tensors of a target made by write_target."""
    import gguf

    src = gguf.GGUFReader(str(draft))
    dst = gguf.GGUFReader(str(target), "r+")
    originals = {t.name: t for t in src.tensors}
    eps = epsilons(copies, delta)
    new_index = [(i, c) for i, n in enumerate(copies) for c in range(n + 1)]
    for t in dst.tensors:
        m = _BLOCK_RE.match(t.name)
        if not m or m.group(2).split(".")[0] not in SCALED_PARTS:
            continue
        src_block, copy_no = new_index[int(m.group(1))]
        if copy_no == 0:
            continue
        orig = originals[f"blk.{src_block}.{m.group(2)}"]
        data, _ = scale_tensor(np.asarray(orig.data), orig.tensor_type.name, eps[src_block])
        t.data[...] = data.reshape(t.data.shape).view(t.data.dtype)
    dst.data.flush()
    del dst


def calibrate_delta(draft: Path, work: Path, agreement: float, n_tokens: int = 48,
                    n_threads: int | None = None, trials: int = 6, tol: float = 0.025,
                    progress: Progress | None = None) -> tuple[float, list[Trial]]:
    """Find the total scale delta whose proxy target agrees with the draft about `agreement`."""
    from specchat.bench.make_pair import read_draft, write_target

    if agreement >= 1.0:
        return 0.0, []
    info = read_draft(draft)
    copies = [1] * info.n_layers
    proxy = work / "proxy.gguf"
    prompts = calibration_prompts()
    history: list[Trial] = []

    def trial(delta: float) -> float:
        if not history:
            write_target(draft, proxy, copies, delta)
        else:
            patch_delta(proxy, copies, draft, delta)
        a = measure_agreement(draft, proxy, prompts, n_tokens, n_threads)
        history.append(Trial(delta, a))
        if progress:
            progress(f"delta {delta:.4g}: agreement {a:.3f}")
        return a

    # Agreement falls as delta grows. Regula falsi in log(delta), bracketed in [lo, hi]; stop when
    # within `tol` (the measurement itself is a proportion over a few hundred tokens).
    lo, hi = 1e-3, 3.0
    delta = 0.1
    for _ in range(trials):
        a = trial(delta)
        if abs(a - agreement) <= tol:
            return delta, history
        if a > agreement:
            lo = max(lo, delta)
        else:
            hi = min(hi, delta)
        delta = _interpolate(history, agreement, lo, hi)
    return _interpolate(history, agreement, lo, hi, final=True), history


def _interpolate(history: Sequence[Trial], agreement: float, lo: float, hi: float,
                 final: bool = False) -> float:
    """Next delta: linear in log(delta) between the nearest trials on either side of the goal;
    the midpoint in log(delta) of [lo, hi] while one side has no trial yet."""
    above = [t for t in history if t.agreement > agreement]
    below = [t for t in history if t.agreement <= agreement]
    if not above or not below:
        if final:
            return min(history, key=lambda t: abs(t.agreement - agreement)).delta
        step = 3.0 if not below else 1 / 3.0  # walk out by a factor 3 until bracketed
        return min(hi, max(lo, history[-1].delta * step))
    a = max(above, key=lambda t: t.delta)
    b = min(below, key=lambda t: t.delta)
    if a.agreement == b.agreement or a.delta >= b.delta:
        return math.sqrt(a.delta * b.delta)
    w = (a.agreement - agreement) / (a.agreement - b.agreement)
    w = min(0.9, max(0.1, w))  # keep strictly inside the bracket
    return math.exp(math.log(a.delta) + w * (math.log(b.delta) - math.log(a.delta)))
