"""How the Vulkan backend's numbers compare, printed (run by packaging/vulkan-check.sh after the
tests; a measurement, not a test):

- batch invariance on the device: the largest logit difference between a position evaluated in a
  one-token pass and the same position inside a pass of B tokens (what greedy identity of
  speculative decoding rests on, see the README's Exactness);
- Vulkan against the CPU: the largest logit difference for the same positions, and whether greedy
  generation of the target alone gives the same tokens on both.

    python tests/vulkan/numerics.py MODEL.gguf [MODEL.gguf...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from specchat.engine.llama.model import LlamaModel
from specchat.engine.types import ModelSettings

PROMPT = ("<|im_start|>user\nWrite a short poem about the sea, then explain what a tide is."
          "<|im_end|>\n<|im_start|>assistant\n")
BATCHES = (2, 5, 9)
GREEDY_TOKENS = 16


def open_model(path: Path, n_gpu_layers: int) -> LlamaModel:
    # flash attention off: lavapipe (Mesa 22.3) crashes in its shaders (tests/vulkan)
    return LlamaModel.open(ModelSettings(path=path, n_ctx=512, n_gpu_layers=n_gpu_layers,
                                         n_threads=1, flash_attn=False))


def one_by_one(model: LlamaModel, tokens: list[int]) -> np.ndarray:
    model.reset()
    rows = []
    for tok in tokens:
        model.decode([tok], logits="last")
        rows.append(model.logits(-1).copy())
    return np.stack(rows)


def batched(model: LlamaModel, prefix: list[int], tokens: list[int]) -> np.ndarray:
    model.reset()
    model.decode(prefix, logits=None)
    model.decode(tokens, logits="all")
    return np.stack([model.logits(i).copy() for i in range(len(tokens))])


def greedy(model: LlamaModel, prompt: list[int], n: int) -> list[int]:
    model.reset()
    model.decode(prompt, logits="last")
    out = []
    for _ in range(n):
        tok = int(np.argmax(model.logits(-1)))
        out.append(tok)
        model.decode([tok], logits="last")
    return out


def report(path: Path) -> None:
    gpu = open_model(path, -1)
    tokens = gpu.tokenize(PROMPT)
    split = len(tokens) - max(BATCHES)
    alone = one_by_one(gpu, tokens)
    drift = []
    for b in BATCHES:
        rows = batched(gpu, tokens[:split], tokens[split:split + b])
        drift.append(f"B={b} {np.abs(rows - alone[split:split + b]).max():.3g}")
    gpu_greedy = greedy(gpu, tokens, GREEDY_TOKENS)
    gpu.close()
    cpu = open_model(path, 0)
    cpu_alone = one_by_one(cpu, tokens)
    cpu_greedy = greedy(cpu, tokens, GREEDY_TOKENS)
    cpu.close()
    same = next((i for i, (a, b) in enumerate(zip(gpu_greedy, cpu_greedy, strict=True))
                 if a != b), None)
    print(f"{path.name}: Vulkan one-token vs batch, max |dlogit|: {', '.join(drift)}; "
          f"Vulkan vs CPU (one-token passes) max |dlogit| {np.abs(alone - cpu_alone).max():.3g}; "
          f"greedy {GREEDY_TOKENS} tokens Vulkan vs CPU: "
          + ("identical" if same is None else f"differ from token {same}"))


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        report(Path(arg))
