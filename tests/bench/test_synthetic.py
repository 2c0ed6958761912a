"""Synthetic llama GGUFs (random weights, chosen shape): what llama.cpp reads back from them, and
the command's one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from specchat.bench.make_pair import read_draft  # noqa: E402
from specchat.bench.synthetic import (  # noqa: E402
    Shape,
    SyntheticError,
    main,
    min_vocab,
    vocabulary,
    write_synthetic,
)

TINY = Shape(width=64, depth=3, heads=4, kv_heads=2, ff=96, vocab=600, n_ctx=256)


def test_vocabulary_is_padded_to_size_with_unique_tokens() -> None:
    tokens, scores, types = vocabulary(1000)
    assert len(tokens) == len(scores) == len(types) == 1000
    assert len(set(tokens)) == 1000
    assert tokens[:3] == ["<unk>", "<s>", "</s>"] and "<0x41>" in tokens
    assert min_vocab() < 1000


@pytest.mark.parametrize(
    ("shape", "needle"),
    [
        (Shape(width=100, heads=16), "multiple of heads"),
        (Shape(heads=16, kv_heads=5), "multiple of kv heads"),
        (Shape(width=48, heads=16, kv_heads=4), "must be even"),
        (Shape(vocab=10), "vocab must be at least"),
        (Shape(depth=0), ">= 1"),
    ],
)
def test_bad_shapes_are_refused(shape: Shape, needle: str) -> None:
    with pytest.raises(SyntheticError, match=needle):
        shape.check()


@pytest.mark.parametrize("dtype", ["f32", "f16", "q8_0"])
def test_file_has_the_shape_asked_for(tmp_path: Path, dtype: str) -> None:
    path = write_synthetic(tmp_path / "s.gguf", TINY, seed=3, dtype=dtype)
    reader = gguf.GGUFReader(str(path))
    assert reader.fields["llama.block_count"].contents() == 3
    assert reader.fields["llama.embedding_length"].contents() == 64
    assert reader.fields["llama.attention.head_count_kv"].contents() == 2
    assert len(reader.fields["tokenizer.ggml.tokens"].contents()) == 600
    weights = sum(int(np.prod([int(x) for x in t.shape])) for t in reader.tensors)
    assert weights == TINY.params()
    kinds = {t.tensor_type.name for t in reader.tensors if t.name.endswith("attn_q.weight")}
    assert kinds == {dtype.upper()}
    info = read_draft(path)  # make-pair accepts it as a draft
    assert (info.arch, info.n_layers, info.block_params) == ("llama", 3, TINY.block_params())


def test_same_seed_same_file_other_seed_other_weights(tmp_path: Path) -> None:
    a = write_synthetic(tmp_path / "a.gguf", TINY, seed=1).read_bytes()
    b = write_synthetic(tmp_path / "b.gguf", TINY, seed=1).read_bytes()
    c = write_synthetic(tmp_path / "c.gguf", TINY, seed=2).read_bytes()
    assert a == b and len(a) == len(c) and a != c


def test_llama_cpp_runs_it(tmp_path: Path) -> None:
    """Real llama.cpp loads the file with the shape asked for, tokenizes through its vocabulary,
    renders its chat template's tokens, and produces finite, seed-dependent logits."""
    from specchat.engine.llama.model import LlamaModel
    from specchat.engine.types import ModelSettings

    path = write_synthetic(tmp_path / "s.gguf", TINY, seed=0, dtype="f16")
    m = LlamaModel.open(ModelSettings(path=path, n_ctx=128, n_batch=64, n_threads=1))
    try:
        assert (m.n_vocab, m.n_layers, m.architecture) == (600, 3, "llama")
        assert "<|assistant|>" in (m.chat_template() or "")
        toks = m.tokenize("<|user|>the sky is blue</s><|assistant|>", True, True)
        assert toks[0] == m.bos and 3 in toks and 4 in toks  # control tokens parsed
        m.decode(toks, "last")
        logits = np.array(m.logits(-1))
        assert logits.shape == (600,) and np.isfinite(logits).all() and logits.std() > 0.1
    finally:
        m.close()


def test_command_writes_and_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.gguf"
    args = [str(out), "--width", "64", "--depth", "1", "--heads", "4", "--kv-heads", "4",
            "--ff", "64", "--vocab", "512", "--type", "f32"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == str(out) and out.is_file()
    assert main(args) == 2  # exists
    assert main([*args[:-2], "--force", "--width", "60"]) == 2  # 60 / 4 heads = 15: odd
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error:") and "exists" in err[0]
    assert err[-1].startswith("error:") and "even" in err[-1]
    assert not (tmp_path / "d.gguf.part").exists()
