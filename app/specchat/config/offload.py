"""`n_gpu_layers = "auto"`: offload as many layers as free VRAM allows, target first.

The arithmetic is deliberately simple and conservative: the file's bytes are spread over the
repeating layers plus one layer's worth for the output head; each offloaded layer also carries its
share of the KV cache; a reserve stays free for llama.cpp's compute buffers and the display."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
BASE_RESERVE = 512 * MIB  # compute buffers, CUDA/Metal context, the desktop
RESERVE_FRACTION = 0.05


@dataclass(frozen=True)
class Footprint:
    """What one model needs on the GPU."""

    weight_bytes: int
    n_layers: int
    kv_bytes: int  # for the configured context

    @property
    def layer_bytes(self) -> float:
        return self.weight_bytes / (self.n_layers + 1) + self.kv_bytes / max(1, self.n_layers)

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.kv_bytes


def usable(free_bytes: int) -> int:
    return max(0, int(free_bytes - BASE_RESERVE - RESERVE_FRACTION * free_bytes))


def fit_layers(fp: Footprint, budget: int) -> int:
    """-1 when the whole model (layers and output head) fits in budget, else a layer count."""
    if fp.n_layers <= 0 or budget <= 0:
        return 0
    if fp.total_bytes <= budget:
        return -1
    return max(0, min(fp.n_layers, int(budget // fp.layer_bytes)))


def used_bytes(fp: Footprint, layers: int) -> int:
    if layers < 0:
        return fp.total_bytes
    return int(layers * fp.layer_bytes)


def plan_offload(
    free_bytes: int, target: Footprint, draft: Footprint | None = None
) -> tuple[int, int]:
    """(target layers, draft layers) for free VRAM: the target gets what it can use first."""
    budget = usable(free_bytes)
    t = fit_layers(target, budget)
    d = fit_layers(draft, budget - used_bytes(target, t)) if draft is not None else 0
    return t, d
