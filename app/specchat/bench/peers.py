"""Peers measured in the same run: llama-cpp-python's own `Llama(draft_model=...)` path with
prompt lookup, and llama.cpp's native `llama-speculative-simple` (with `llama-simple` as its
target-alone baseline) when the user points to a llama.cpp build."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from specchat.errors import SpecchatError


@dataclass(frozen=True)
class PeerRun:
    token_ids: tuple[int, ...]
    tokens_per_second: float
    ttft_ms: float
    drafted: int | None = None
    accepted: int | None = None


class LlamaCppPythonPeer:
    """Target alone and target + LlamaPromptLookupDecoding, both via llama_cpp.Llama.generate.

    Note llama-cpp-python forces logits_all=True when a draft_model is given (an n_ctx x n_vocab
    logits buffer): its peak RSS shows it."""

    def __init__(self, target: Path, n_ctx: int, n_threads: int | None, n_gpu_layers: int,
                 k: int) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

        kwargs = dict(model_path=str(target), n_ctx=n_ctx, n_gpu_layers=n_gpu_layers,
                      n_threads=n_threads, n_threads_batch=n_threads, verbose=False)
        self.k = k
        self.plain = Llama(**kwargs)  # type: ignore[arg-type]
        self.lookup = Llama(**kwargs, draft_model=LlamaPromptLookupDecoding(num_pred_tokens=k))  # type: ignore[arg-type]

    def run(self, which: str, prompt: Sequence[int], max_tokens: int) -> PeerRun:
        llm = self.lookup if which == "lookup" else self.plain
        llm.reset()
        ids: list[int] = []
        t0 = time.perf_counter()
        t_first = t0
        for tok in llm.generate(list(prompt), temp=0.0, top_k=1, top_p=1.0, min_p=0.0,
                                repeat_penalty=1.0, reset=True):
            if not ids:
                t_first = time.perf_counter()
            if llm.token_eos() == tok or _is_eog(llm, tok):
                break
            ids.append(int(tok))
            if len(ids) >= max_tokens:
                break
        t_end = time.perf_counter()
        tps = (len(ids) - 1) / (t_end - t_first) if len(ids) > 1 and t_end > t_first else 0.0
        return PeerRun(tuple(ids), tps, (t_first - t0) * 1000)

    def close(self) -> None:
        self.plain.close()
        self.lookup.close()


def _is_eog(llm, tok: int) -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm.model), tok))


# ---- llama.cpp's native binaries -------------------------------------------------------------

_DECODED = re.compile(
    r"decoded\s+(\d+)\s+tokens\s+in\s+([0-9.]+)\s*s(?:econds)?,\s*speed:\s*([0-9.]+)\s*t/s")
_N_DRAFT = re.compile(r"n_drafted\s*=\s*(\d+)")
_N_ACCEPT = re.compile(r"n_accept\s*=\s*(\d+)")


# llama.cpp's speculative modes run beside specchat's: a draft model's, and the model-free n-gram
# modes (what `--lookup` competes with), each from llama-speculative-simple; "none" is its
# target alone on the same prompt, the baseline of the others (the program refuses an empty
# speculative setup, so "none" is ngram-mod with a lookup longer than any prompt: it never
# drafts). Weight repacking stays off, as specchat keeps it (and AMX repacking crashes here).
NATIVE_MODES = ("none", "draft-simple", "ngram-simple", "ngram-mod")
CURVE_WIDTHS = (1, 2, 3, 5, 9, 17, 33)  # target pass widths the cost curve is measured at
CURVE_DEPTH = 400  # tokens already in the cache when a curve's pass runs


def find_native(bin_dir: Path) -> tuple[Path, Path]:
    """llama-speculative-simple and llama-bench (target-alone decode speed) in a llama.cpp build."""
    if not bin_dir.is_dir():
        raise SpecchatError(f"--llama-cpp-bin: not a folder: {bin_dir}")
    spec, bench = bin_dir / "llama-speculative-simple", bin_dir / "llama-bench"
    for exe in (spec, bench):
        if not exe.is_file():
            raise SpecchatError(f"--llama-cpp-bin: {exe.name} not found in {bin_dir} (build them "
                                "with `bash packaging/llama-tools.sh`, which prints the folder)")
    return spec, bench


def native_spec_args(target: Path, draft: Path | None, prompt: str, n: int, k: int, n_ctx: int,
                     threads: int | None, ngl: int, spec_type: str = "draft-simple") -> list[str]:
    """llama-speculative-simple's arguments for one of NATIVE_MODES (greedy, the same context
    and threads as specchat; n-gram modes keep llama.cpp's own draft lengths)."""
    args = ["-m", str(target), "-p", prompt, "-n", str(n), "--temp", "0", "-c", str(n_ctx),
            "-ngl", str(ngl), "--no-repack"]
    if spec_type == "none":
        args += ["--spec-type", "ngram-mod", "--spec-ngram-mod-n-match", "1024"]
    else:
        args += ["--spec-type", spec_type]
    if spec_type == "draft-simple":
        if draft is None:
            raise SpecchatError("llama.cpp's draft-simple mode needs a draft model")
        args += ["-md", str(draft), "--spec-draft-n-max", str(k), "--spec-draft-n-min", "0",
                 "--spec-draft-p-min", "0", "--spec-draft-ngl", str(ngl)]
    return args + (["-t", str(threads), "-tb", str(threads)] if threads else [])


def native_curve_args(target: Path, widths: Sequence[int], depth: int, reps: int,
                      threads: int | None, ngl: int) -> list[str]:
    """llama-bench timing one pass of each width after `depth` cached tokens."""
    args = ["-m", str(target), "-p", ",".join(str(w) for w in widths), "-n", "0",
            "-d", str(depth), "-r", str(reps), "-ngl", str(ngl), "--repack", "0", "-o", "json"]
    return args + (["-t", str(threads)] if threads else [])


def parse_native_curve(output: str) -> dict[int, float]:
    """llama-bench -o json, prompt tests: width -> mean milliseconds of one pass."""
    try:
        tests = json.loads(output[output.index("[") : output.rindex("]") + 1])
        return {int(t["n_prompt"]): float(t["avg_ns"]) / 1e6 for t in tests
                if int(t.get("n_prompt", 0)) > 0 and int(t.get("n_gen", 0)) == 0}
    except (ValueError, KeyError, TypeError):
        raise SpecchatError("llama-bench printed no prompt-processing results") from None


def parse_native_spec(output: str) -> PeerRun:
    """llama-speculative-simple: `decoded N tokens in T seconds, speed: S t/s`, n_drafted and
    n_accept."""
    m = _DECODED.search(output)
    if not m:
        raise SpecchatError("llama-speculative-simple printed no 'decoded N tokens in T s' line")
    drafted, accepted = _N_DRAFT.search(output), _N_ACCEPT.search(output)
    return PeerRun(
        token_ids=(),
        tokens_per_second=float(m.group(3)),
        ttft_ms=0.0,
        drafted=int(drafted.group(1)) if drafted else None,
        accepted=int(accepted.group(1)) if accepted else None,
    )


def run_native(exe: Path, args: Sequence[str], timeout_s: float = 600.0) -> str:
    try:
        proc = subprocess.run([str(exe), *args], capture_output=True, text=True, errors="replace",
                              timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpecchatError(f"{exe.name} failed: {exc}") from None
    out = proc.stdout + "\n" + proc.stderr
    if proc.returncode != 0:
        tail = " | ".join(out.strip().splitlines()[-3:])
        raise SpecchatError(f"{exe.name} exited with {proc.returncode}: {tail}")
    return out
