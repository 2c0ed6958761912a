"""make-pair: the block plan, exact scaling of quantized tensors, and real targets whose logits
equal the draft's at epsilon 0 (llama.cpp run on the real SmolLM2-135M)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from specchat.bench.make_pair import (  # noqa: E402
    MakePairError,
    epsilons,
    plan_copies,
    plan_for_cost,
    predicted_cost,
    read_draft,
    scale_tensor,
    write_target,
)
from specchat.cli import main  # noqa: E402


@pytest.mark.parametrize(("layers", "extra"), [(30, 0), (30, 7), (30, 342), (4, 9)])
def test_plan_copies_spreads_evenly(layers: int, extra: int) -> None:
    copies = plan_copies(layers, extra)
    assert len(copies) == layers and sum(copies) == extra
    assert max(copies) - min(copies) <= 1


def test_plan_for_cost() -> None:
    # SmolLM2-135M: 30 blocks of 3,538,944 matmul weights, tied 28,311,552-weight head
    plan = plan_for_cost(30, 3_538_944, 28_311_552, 10.0)
    assert plan.n_extra == 342 and plan.block_count == 372
    assert plan.cost == pytest.approx(10.0, abs=0.03)
    assert plan_for_cost(30, 3_538_944, 28_311_552, 1.0).n_extra == 0
    assert predicted_cost(30, 0, 10, 5) == 1.0
    with pytest.raises(MakePairError):
        plan_for_cost(30, 3_538_944, 28_311_552, 0.5)


def test_epsilons_share_the_total_scale() -> None:
    assert epsilons([2, 4, 0], 0.4) == [0.2, 0.1, 0.0]


def _quantized(qtype_name: str, rows: int = 8, cols: int = 256) -> np.ndarray:
    rng = np.random.default_rng(0)
    values = rng.normal(0, 0.05, size=(rows, cols)).astype(np.float32)
    return gguf.quants.quantize(values, gguf.GGMLQuantizationType[qtype_name])


@pytest.mark.parametrize("qtype_name", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
def test_scaling_block_scales_scales_every_value(qtype_name: str) -> None:
    qtype = gguf.GGMLQuantizationType[qtype_name]
    data = _quantized(qtype_name)
    before = gguf.quants.dequantize(data, qtype)
    zero, t0 = scale_tensor(data, qtype_name, 0.0)
    assert t0 == qtype_name and zero.shape == data.shape and zero.dtype == np.uint8
    assert not np.any(gguf.quants.dequantize(zero, qtype))  # epsilon 0: exactly zero
    half, _ = scale_tensor(data, qtype_name, 0.03)
    # up to float16 rounding of each block's scale (and offset: Q4_1/Q5_1 values are d*q + m)
    atol = 2 * 2**-11 * 0.03 * float(np.abs(before).max())
    np.testing.assert_allclose(gguf.quants.dequantize(half, qtype), 0.03 * before, rtol=0,
                               atol=atol)
    np.testing.assert_array_equal(data, _quantized(qtype_name))  # the input is left alone


def test_float_and_fallback_scaling() -> None:
    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    y, t = scale_tensor(x, "F32", 0.5)
    assert t == "F32" and np.array_equal(y, x * np.float32(0.5))
    bf16 = gguf.quants.quantize(x, gguf.GGMLQuantizationType.BF16)
    z, t = scale_tensor(bf16, "BF16", 0.25)  # no block scales: dequantized, written as F32
    assert t == "F32" and z.dtype == np.float32
    want = 0.25 * gguf.quants.dequantize(bf16, gguf.GGMLQuantizationType.BF16)
    np.testing.assert_allclose(z, want)


def test_read_draft_rejects_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(MakePairError, match="not a readable GGUF"):
        read_draft(bad)
    other = tmp_path / "gemma.gguf"
    w = gguf.GGUFWriter(str(other), arch="gemma3")
    w.add_block_count(1)
    w.add_tensor("blk.0.attn_output.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(MakePairError, match="not supported"):
        read_draft(other)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--agreement", "0"], "--agreement must be in (0, 1]"),
        (["--agreement", "1.5"], "--agreement must be in (0, 1]"),
        (["--cost", "0.5"], "--cost must be at least 1"),
        (["--epsilon", "-1"], "--epsilon must be >= 0"),
    ],
)
def test_make_pair_bad_flags_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                    extra: list[str], needle: str) -> None:
    draft = tmp_path / "d.gguf"
    draft.write_bytes(b"x")
    if needle.startswith("--cost"):  # the plan is made after the draft is read
        pytest.importorskip("llama_cpp")
        draft = Path(__file__)  # not a GGUF: the file error comes first
        needle = "not a readable GGUF"
    assert main(["bench", "make-pair", str(draft), str(tmp_path / "o.gguf"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_make_pair_refuses_to_overwrite(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "o.gguf"
    out.write_bytes(b"keep me")
    assert main(["bench", "make-pair", str(tmp_path / "d.gguf"), str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == b"keep me"


# ---- real llama.cpp --------------------------------------------------------------------------


def _all_logits(path: Path, tokens: list[int]) -> np.ndarray:
    from specchat.engine.llama.model import LlamaModel
    from specchat.engine.types import ModelSettings

    m = LlamaModel.open(ModelSettings(path=path, n_ctx=256, n_batch=64, n_threads=1))
    try:
        assert m.n_layers >= 30
        m.decode(tokens, "all")
        return np.stack([np.array(m.logits(i)) for i in range(len(tokens))])
    finally:
        m.close()


def _tokens(path: Path) -> list[int]:
    from specchat.engine.llama.model import LlamaModel
    from specchat.engine.types import ModelSettings

    m = LlamaModel.open(ModelSettings(path=path), vocab_only=True)
    try:
        return m.tokenize("The quick brown fox jumps over the lazy dog because it", True, True)
    finally:
        m.close()


@pytest.mark.real
def test_epsilon_zero_target_has_the_drafts_logits(real_models: dict[str, Path],
                                                   tmp_path: Path) -> None:
    from specchat.bench.calibrate import patch_delta

    draft = real_models["smollm2"]
    copies = plan_copies(30, 4)  # 4 extra blocks: quick, and enough to prove the point
    target = tmp_path / "t.gguf"
    write_target(draft, target, copies, 0.0)
    reader = gguf.GGUFReader(str(target))
    assert reader.fields["llama.block_count"].contents() == 34
    toks = _tokens(draft)
    want = _all_logits(draft, toks)
    assert np.array_equal(_all_logits(target, toks), want)  # bit for bit
    patch_delta(target, copies, draft, 1.0)
    moved = _all_logits(target, toks)
    assert not np.array_equal(moved, want) and np.isfinite(moved).all()
    patch_delta(target, copies, draft, 0.0)
    assert np.array_equal(_all_logits(target, toks), want)


@pytest.mark.real
def test_make_pair_command(real_models: dict[str, Path], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pair.gguf"
    argv = ["bench", "make-pair", str(real_models["smollm2"]), str(out), "--cost", "1.15",
            "--agreement", "1", "--calib-tokens", "6", "--threads", "1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "measured agreement: 1.000" in captured.err
    reader = gguf.GGUFReader(str(out))
    assert reader.fields["llama.block_count"].contents() == 30 + plan_for_cost(
        30, 3_538_944, 28_311_552, 1.15).n_extra
    assert "calibrated target" in reader.fields["general.name"].contents()
