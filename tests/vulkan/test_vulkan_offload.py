"""specchat's GPU path on a real ggml GPU backend: llama.cpp's Vulkan backend on Mesa's lavapipe.

What specchat reports as offloaded must be what llama.cpp placed (its per-layer load log, not
only its summary line); greedy speculative output must equal the target alone on this backend;
the failure cases (a plan that does not fit, a driver that is gone) give one clear line or a CPU
fallback that says so. Outputs are a few tokens: lavapipe is a CPU pretending to be a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from specchat.config.schema import ModelConfig, PairConfig
from specchat.engine.llama.model import LlamaModel
from specchat.engine.speculative.loop import SpeculativeEngine
from specchat.engine.types import (
    DoneEvent,
    DraftMode,
    GenerationSettings,
    Message,
    ModelSettings,
    SpecSettings,
)
from specchat.pair_settings import to_pair_settings

from .conftest import Placed, placements, specchat, tensor_mib

pytestmark = [pytest.mark.vulkan, pytest.mark.real]
N_CTX = 256
# Mesa 22.3's lavapipe (Debian 12) crashes in its own worker thread (SIGSEGV in libvulkan_lvp)
# running llama.cpp's flash-attention shaders: a driver bug, not specchat's or llama.cpp's. Every
# model here runs with flash attention off (docs/gpu.md).
FA = False
PROMPT = [Message("user", "Name three primary colors.")]
GREEDY = GenerationSettings(max_tokens=10, temperature=0.0)


@pytest.fixture
def load_log(monkeypatch, capfd):
    """Reads llama.cpp's log of the loads made since the test began."""
    monkeypatch.setenv("SPECCHAT_LLAMA_LOG", "1")
    capfd.readouterr()
    return lambda: capfd.readouterr().err


def open_model(path: Path, n_gpu_layers: int) -> LlamaModel:
    return LlamaModel.open(ModelSettings(path=path, n_ctx=N_CTX, n_gpu_layers=n_gpu_layers,
                                         flash_attn=FA))


def all_tensors(path: Path) -> list[str]:
    import gguf

    return [t.name for t in gguf.GGUFReader(path).tensors]


def check_matches(log_placed: Placed, info, device: str) -> None:
    assert log_placed.on_gpu == log_placed.summary[0]  # the summary says what the layers say
    assert info.n_gpu_layers == log_placed.on_gpu
    assert info.offloadable_layers == log_placed.summary[1]
    assert log_placed.devices <= {device}


def test_target_fully_offloaded(vulkan_device, real_models, load_log) -> None:
    model = open_model(real_models["qwen"], -1)
    try:
        log = load_log()
        (placed,) = placements(log)
        check_matches(placed, model.info(), vulkan_device)
        assert placed.on_gpu == 25 and placed.summary == (25, 25)  # 24 blocks + output
        # Where the weights are: the input embeddings stay on the CPU by design, and so does
        # Qwen's output weight (138 MiB of Q8_0), larger than lavapipe's largest storage buffer
        # (maxStorageBufferRange 128 MiB), although llama.cpp (and so specchat) counts the output
        # layer as offloaded. Everything else is on the device.
        qwen = real_models["qwen"]
        kept = tensor_mib(qwen, "token_embd.weight", "output.weight")
        assert placed.buffers["CPU_Mapped"] == pytest.approx(kept, abs=0.01), placed.buffers
        assert placed.buffers[vulkan_device] == pytest.approx(
            tensor_mib(qwen, *all_tensors(qwen)) - kept, abs=0.5)
        assert f"{vulkan_device} KV buffer size" in log  # the cache is on the device too
    finally:
        model.close()


def test_target_partly_offloaded(vulkan_device, real_models, load_log) -> None:
    """N layers: llama.cpp puts the output layer and the last N - 1 blocks on the GPU."""
    model = open_model(real_models["qwen"], 8)
    try:
        (placed,) = placements(load_log())
        check_matches(placed, model.info(), vulkan_device)
        assert placed.summary == (8, 25)
    finally:
        model.close()


def generate(engine: SpeculativeEngine) -> DoneEvent:
    events = list(engine.chat(PROMPT, GREEDY))
    assert isinstance(events[-1], DoneEvent)
    return events[-1]


def test_draft_fully_offloaded_and_greedy_equals_the_target(vulkan_device, real_models,
                                                            derived_models, load_log) -> None:
    """A same-vocabulary pair, both models on the device: what it writes is the target's. (On
    Vulkan a position's logits in a batch differ from a one-token pass by up to ~0.2-0.6, see
    docs/gpu.md: a near-tie could still flip a token; a failure says where and the gap.)"""
    target = ModelSettings(path=real_models["smollm2"], n_ctx=N_CTX, n_gpu_layers=-1,
                           flash_attn=FA)
    draft = ModelSettings(path=derived_models["smollm2-q4_0"], n_ctx=N_CTX, n_gpu_layers=-1,
                          flash_attn=FA)
    engine = SpeculativeEngine.load(target, draft, SpecSettings(draft_max=4, adaptive=False))
    try:
        t_placed, d_placed = placements(load_log())
        check_matches(t_placed, engine.info.target, vulkan_device)
        assert engine.info.draft is not None
        check_matches(d_placed, engine.info.draft, vulkan_device)
        assert d_placed.summary == (31, 31) and engine.info.backend == "Vulkan"
        # every weight but the input embeddings on the device
        embeddings = tensor_mib(draft.path, "token_embd.weight")
        assert d_placed.buffers["CPU_Mapped"] == pytest.approx(embeddings, abs=0.01)
        speculative = generate(engine)
    finally:
        engine.close()
    alone = SpeculativeEngine.load(target, None, SpecSettings(mode=DraftMode.NONE))
    try:
        want = generate(alone)
        if speculative.token_ids != want.token_ids:
            pairs = zip(speculative.token_ids, want.token_ids, strict=False)
            at = next((i for i, (a, b) in enumerate(pairs) if a != b), len(want.token_ids))
            alone.target.reset()
            alone.target.decode(alone.tokenize_chat(PROMPT) + list(want.token_ids[:at]))
            top = np.sort(alone.target.logits(-1))[-2:]
            pytest.fail(f"diverged at token {at} (top-2 logit gap there: {top[1] - top[0]:.4f})")
    finally:
        alone.close()
    assert len(want.token_ids) == GREEDY.max_tokens and speculative.stats.drafted > 0


def test_auto_under_a_budget_splits_as_planned(vulkan_device, real_models, monkeypatch,
                                               load_log) -> None:
    """SPECCHAT_VRAM_BUDGET makes the 2 GiB lavapipe device a small GPU: "auto" splits the
    target and gives the draft what is left, and llama.cpp places exactly that."""
    monkeypatch.setenv("SPECCHAT_VRAM_BUDGET", "1000M")
    pair = PairConfig(target=ModelConfig(path="t", n_ctx=N_CTX, flash_attn=FA),
                      draft=ModelConfig(path="d", n_ctx=N_CTX, flash_attn=FA), cross_vocab=True)
    target, draft = to_pair_settings(pair, real_models["qwen"], real_models["smollm2"])
    assert draft is not None
    assert 0 < target.n_gpu_layers < 25, target  # split, not all and not none
    assert draft.n_gpu_layers != -1, draft  # the target took most of the budget
    engine = SpeculativeEngine.load(target, draft, SpecSettings(cross_vocab=True))
    try:
        t_placed, d_placed = placements(load_log())
        check_matches(t_placed, engine.info.target, vulkan_device)
        assert engine.info.draft is not None
        check_matches(d_placed, engine.info.draft, vulkan_device)
        assert t_placed.summary[0] == target.n_gpu_layers
        assert d_placed.summary[0] == draft.n_gpu_layers
        assert not engine.info.notices  # the plan fitted: no CPU fallback
    finally:
        engine.close()


def test_doctor_names_the_device_and_offload(vulkan_device) -> None:
    proc = specchat("doctor")
    assert proc.returncode == 0, proc.stderr
    first = next(line for line in proc.stdout.splitlines() if line.startswith("llama.cpp"))
    assert first.startswith("llama.cpp     backend Vulkan (built with Vulkan")
    assert f"GPU seen yes ({vulkan_device})" in first and first.endswith("GPU offload yes")
    device = next(line for line in proc.stdout.splitlines() if f"GPU: {vulkan_device}" in line)
    assert "llvmpipe" in device and "GB free" in device


def test_a_plan_that_does_not_fit_falls_back_to_the_cpu_and_says_so(vulkan_device,
                                                                    real_models) -> None:
    """All layers asked of a device that cannot hold them: llama.cpp's
    GGML_VK_FORCE_MAX_BUFFER_SIZE makes the device's buffers smaller than the model's weights
    need, so allocating them fails at load as on a full GPU (lavapipe itself never runs out: its
    "device memory" is the process's). The model runs on the CPU and one line says so."""
    proc = specchat("ask", "--target", str(real_models["smollm2"]), "--no-draft",
                    "--n-gpu-layers", "-1", "--n-ctx", str(N_CTX), "--max-tokens", "3",
                    "--temperature", "0", "Hi",
                    env={"GGML_VK_FORCE_MAX_BUFFER_SIZE": str(16 << 20)})
    assert proc.returncode == 0, proc.stderr
    notices = [line for line in proc.stderr.splitlines() if "on the CPU instead" in line]
    assert len(notices) == 1, proc.stderr
    assert notices[0] == (
        "specchat: could not load SmolLM2-135M-Instruct.Q4_1.gguf with -1 GPU layers (out of GPU "
        "memory?); retry with fewer n_gpu_layers or 0 -- loaded SmolLM2-135M-Instruct.Q4_1.gguf "
        "on the CPU instead (to keep part of it on the GPU, set n_gpu_layers to a layer count, "
        "lower than 31)")
    assert proc.stdout.strip()


def test_no_vulkan_driver_runs_on_the_cpu_and_says_why(vulkan_device, real_models) -> None:
    """The driver is gone at run time (VK_ICD_FILENAMES points nowhere): doctor says the build
    has Vulkan but sees no GPU, and GPU layers asked for run on the CPU with a notice."""
    gone = {"VK_ICD_FILENAMES": "/nonexistent/icd.json", "VK_DRIVER_FILES": "/nonexistent/icd.json"}
    doctor = specchat("doctor", env=gone)
    assert doctor.returncode == 0, doctor.stderr
    assert "backend Vulkan" in doctor.stdout and "GPU seen no" in doctor.stdout
    assert "vulkaninfo --summary" in doctor.stdout
    proc = specchat("ask", "--target", str(real_models["smollm2"]), "--no-draft",
                    "--n-gpu-layers", "-1", "--n-ctx", str(N_CTX), "--max-tokens", "3",
                    "--temperature", "0", "Hi", env=gone)
    assert proc.returncode == 0, proc.stderr
    (notice,) = [line for line in proc.stderr.splitlines() if "n_gpu_layers" in line]
    assert "has Vulkan but sees no Vulkan GPU" in notice and notice.endswith("on the CPU")


def test_bench_report_names_the_backend(vulkan_device, real_models, derived_models,
                                        tmp_path: Path) -> None:
    config = tmp_path / "models.toml"
    config.write_text(f"""
[pairs.vk]
description = "SmolLM2 and its Q4_0 copy, flash attention off (lavapipe)"
[pairs.vk.target]
path = "{real_models['smollm2']}"
flash_attn = false
[pairs.vk.draft]
path = "{derived_models['smollm2-q4_0']}"
flash_attn = false
""")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"name": "colors", "prompt": "Name three primary colors."}\n')
    proc = specchat("--config", str(config), "bench", "--pair", "vk", "--n-gpu-layers", "-1",
                    "--prompts", str(prompts), "--rounds", "1", "--max-tokens", "6",
                    "--draft-lengths", "2", "--no-adaptive", "--no-lookup", "--no-warmup",
                    "--physics-reps", "1", "--n-ctx", str(N_CTX), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    placement = doc["settings"]["placement"]
    assert placement["backend"] == "Vulkan"
    assert placement["devices"][0].startswith(f"{vulkan_device}: llvmpipe")
    assert placement["gpu_layers"] == {"target": "31/31", "draft": "31/31"}
    modes = {m["mode"]: m for m in doc["modes"]}
    assert modes["k=2"]["greedy_identity"] == 1.0
