"""Bad input: one-line errors, never a crash. Context overflow handling."""

from __future__ import annotations

from pathlib import Path

import pytest

from specchat.cli import main
from specchat.engine.types import GenerationSettings, Message, NoticeEvent
from specchat.errors import ContextOverflowError, ModelLoadError, VocabMismatchError

from .conftest import load, run


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load(tmp_path / "nope.gguf")


def test_not_a_gguf(tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("hello")
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        load(bad)


def test_corrupt_gguf(tmp_path, tiny_target):
    data = Path(tiny_target).read_bytes()
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError, match="corrupt"):
        load(bad)


def test_vocab_mismatch_names_files_and_first_id(tiny_target, tiny_other_vocab):
    with pytest.raises(VocabMismatchError) as err:
        load(tiny_target, tiny_other_vocab)
    message = str(err.value)
    assert "target.gguf" in message and "other.gguf" in message
    assert "token" in message and "cross_vocab" in message
    assert err.value.settings == ("cross_vocab",)
    assert "\n" not in message


def test_prompt_longer_than_context(tiny_target):
    engine = load(tiny_target, n_ctx=256)  # llama.cpp rounds n_ctx up to a multiple of 256
    with pytest.raises(ContextOverflowError, match="context holds 256"):
        run(engine.chat([Message("user", "x " * 300)], GenerationSettings(max_tokens=8)))
    engine.close()


def test_long_conversation_drops_oldest_turns(tiny_target, tiny_draft):
    engine = load(tiny_target, tiny_draft, n_ctx=256, draft_max=3)
    history = [Message("system", "be brief")]
    for i in range(16):
        history += [Message("user", f"the cat {i} is"), Message("assistant", "a b c d e f g h")]
    history.append(Message("user", "and the sea"))
    done, events = run(engine.chat(history, GenerationSettings(max_tokens=30)))
    notices = [e for e in events if isinstance(e, NoticeEvent)]
    assert done.dropped_turns > 0
    assert any("dropped" in n.message for n in notices)
    assert done.stats.prompt_tokens + 30 <= 256
    assert done.stats.generated_tokens == 30
    engine.close()


def test_generation_stops_at_full_context(tiny_target, tiny_draft):
    engine = load(tiny_target, tiny_draft, n_ctx=256, draft_max=4, adaptive=False)
    done, _ = run(engine.chat([Message("user", "the cat")], GenerationSettings(max_tokens=500)))
    assert done.stats.finish_reason == "context"
    # the cache is full (256 tokens); the last token is predicted from it and not cached
    assert done.stats.prompt_tokens + done.stats.generated_tokens == 256 + 1
    assert len(engine.target.tokens) == 256
    engine.close()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["ask", "--target", "/nonexistent.gguf", "hi"], "not found"),
        (["ask", "--target", "{target}", "--draft", "{other}", "hi"], "do not share a vocabulary"),
        (["ask", "--target", "{target}", "--temperature", "-1", "hi"], "--temperature"),
        (
            ["ask", "--target", "{target}", "--draft", "{target}", "--draft-max", "99", "hi"],
            "--draft-max",
        ),
        (["ask", "--target", "{target}", "--n-ctx", "256", "x " * 300], "context holds"),
        (["ask", "--no-such-flag"], "error"),
    ],
)
def test_cli_errors_are_one_line_exit_2(argv, fragment, capsys, tiny_target, tiny_other_vocab):
    argv = [a.format(target=tiny_target, other=tiny_other_vocab) for a in argv]
    with pytest.raises(SystemExit) if "--no-such-flag" in argv else _nullcontext() as exit_info:
        code = main(argv)
    if exit_info is not None and hasattr(exit_info, "value"):
        code = exit_info.value.code
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_gpu_out_of_memory_falls_back_to_cpu(monkeypatch, tiny_target, tiny_draft):
    """No GPU here: simulate llama.cpp failing to offload (as it does when VRAM runs out)."""
    from specchat.engine.llama.model import LlamaModel
    from specchat.engine.speculative import loop as engine_module
    from specchat.engine.types import ModelSettings, SpecSettings
    from specchat.errors import GpuOffloadError

    real_open = LlamaModel.open

    def flaky_open(settings, vocab_only=False, threadpool=None, cancel=None):
        if settings.n_gpu_layers:
            raise GpuOffloadError(f"could not load {settings.path.name} with 99 GPU layers")
        return real_open(settings, vocab_only, threadpool, cancel)

    monkeypatch.setattr(LlamaModel, "open", staticmethod(flaky_open))
    engine = engine_module.SpeculativeEngine.load(
        ModelSettings(path=tiny_target, n_gpu_layers=99),
        ModelSettings(path=tiny_draft, n_gpu_layers=0),
        SpecSettings(),
    )
    notices = engine.info.notices
    assert any("on the CPU instead" in n and "n_gpu_layers" in n for n in notices)
    assert engine.info.target.n_gpu_layers == 0
    engine.close()


def test_no_layers_reported_offloaded_without_a_gpu(tiny_target):
    """An RPC-enabled build tells llama.cpp it "supports GPU offload" even with no GPU: a model
    asked for GPU layers on such a machine runs on the CPU and must say 0 layers offloaded."""
    from specchat.engine.llama.devices import gpus
    from specchat.engine.llama.model import LlamaModel
    from specchat.engine.types import ModelSettings

    if gpus():
        pytest.skip("this machine has a GPU")
    model = LlamaModel.open(ModelSettings(path=tiny_target, n_gpu_layers=99))
    try:
        assert model.info().n_gpu_layers == 0
    finally:
        model.close()


def test_gpu_layers_without_a_gpu_run_on_the_cpu_and_say_so(tiny_target, tiny_draft):
    """GPU layers asked of a build that sees no GPU (CPU-only, or a GPU build whose driver is
    gone): the model runs on the CPU and a notice says why, instead of the request vanishing."""
    from specchat.engine.llama.devices import gpus
    from specchat.engine.speculative.loop import SpeculativeEngine
    from specchat.engine.types import ModelSettings, SpecSettings

    if gpus():
        pytest.skip("this machine has a GPU")
    engine = SpeculativeEngine.load(
        ModelSettings(path=tiny_target, n_gpu_layers=5),
        ModelSettings(path=tiny_draft, n_gpu_layers=0),
        SpecSettings(),
    )
    try:
        (notice,) = [n for n in engine.info.notices if "n_gpu_layers" in n]
        assert notice.startswith("n_gpu_layers 5 for target.gguf, but this llama.cpp build ")
        assert notice.endswith("-- running it on the CPU")
        assert engine.info.target.n_gpu_layers == 0
    finally:
        engine.close()
