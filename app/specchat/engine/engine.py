"""The generation loop: draft, verify in one batched target pass, emit, roll back, repeat.

One SpeculativeEngine owns both models and must be used from one thread at a time."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from specchat.engine.adaptive import PROBE_SHARE, DraftLengthController
from specchat.engine.compat import vocab_mismatch, vocab_mismatch_error
from specchat.engine.costs import LoadCosts, measure_load_costs, warm_up
from specchat.engine.drafting import Drafter, LookupDrafter, ModelDrafter, common_prefix
from specchat.engine.llama import LlamaModel, backend_name, default_threads
from specchat.engine.sampling import distribution, greedy, sample
from specchat.engine.template import CHATML, ChatTemplate
from specchat.engine.textstream import TextStream
from specchat.engine.threads import SharedThreadpool
from specchat.engine.types import (
    DoneEvent,
    DraftMode,
    EngineInfo,
    Event,
    GenerationSettings,
    Message,
    ModelSettings,
    NoticeEvent,
    Origin,
    ProgressEvent,
    SpecSettings,
    Stats,
    TokenEvent,
)
from specchat.engine.verify import verify_greedy, verify_sampling
from specchat.errors import ContextOverflowError, GpuOffloadError, SpecchatError

MAX_DRAFT = 32  # batched logits drift from one-token logits beyond ~33 tokens (README)


def load_engine(
    target: ModelSettings,
    draft: ModelSettings | None,
    spec: SpecSettings,
    chat_template: str | None = None,
) -> SpeculativeEngine:
    return SpeculativeEngine.load(target, draft, spec, chat_template=chat_template)


def _open_with_cpu_fallback(
    settings: ModelSettings, pool: SharedThreadpool | None, notices: list[str]
) -> LlamaModel:
    """Load a model; when GPU offload fails (out of GPU memory...), load it on the CPU and say
    so rather than fail."""
    try:
        return LlamaModel.open(settings, threadpool=pool)
    except GpuOffloadError as exc:
        if settings.n_gpu_layers == 0:
            raise
        model = LlamaModel.open(dataclasses.replace(settings, n_gpu_layers=0), threadpool=pool)
        notices.append(
            f"{exc.message} -- loaded {Path(settings.path).name} on the CPU instead "
            "(to keep part of it on the GPU, set n_gpu_layers lower than "
            f"{settings.n_gpu_layers})"
        )
        return model


class SpeculativeEngine:
    def __init__(
        self,
        target: LlamaModel,
        draft: LlamaModel | None,
        spec: SpecSettings,
        chat_template: str | None = None,
    ) -> None:
        self.target = target
        self.draft_model = draft
        self._mismatch = vocab_mismatch(target, draft) if draft is not None else None
        self.cross_vocab = self._mismatch is not None
        self._notices: list[str] = []
        source = chat_template or target.chat_template()
        if not source:
            self._notices.append("the target GGUF has no chat template; using ChatML")
            source = CHATML
        self.template = ChatTemplate(
            source,
            bos_token=target.token_text(target.bos).decode(errors="replace")
            if target.bos >= 0
            else "",
            eos_token=target.token_text(target.eos).decode(errors="replace")
            if target.eos >= 0
            else "",
        )
        self._spec = spec
        self._drafter: Drafter | None = None
        self._threadpool: SharedThreadpool | None = None
        warm_up(target)
        self._load_costs = LoadCosts()
        if draft is not None:
            warm_up(draft)
            self._load_costs = measure_load_costs(target, draft, spec.draft_max)
        self.set_spec(spec)

    @classmethod
    def load(
        cls,
        target: ModelSettings,
        draft: ModelSettings | None,
        spec: SpecSettings,
        chat_template: str | None = None,
    ) -> SpeculativeEngine:
        pool = SharedThreadpool(target.n_threads or default_threads()) if draft else None
        notices: list[str] = []
        target_model = _open_with_cpu_fallback(target, pool, notices)
        draft_model = None
        try:
            if draft is not None and spec.mode is DraftMode.MODEL:
                draft_model = _open_with_cpu_fallback(draft, pool, notices)
            engine = cls(target_model, draft_model, spec, chat_template)
            engine._threadpool = pool
            engine._notices[:0] = notices
            return engine
        except BaseException:
            target_model.close()
            if draft_model is not None:
                draft_model.close()
            if pool is not None:
                pool.free()
            raise

    # ---- public API (ChatEngine) -------------------------------------------------------------

    @property
    def spec(self) -> SpecSettings:
        return self._spec

    def set_spec(self, spec: SpecSettings, *, keep_measurements: bool = True) -> None:
        """Change speculative settings. The draft-length controller keeps what it measured
        (target costs; draft costs and acceptance for the same drafter) unless told not to."""
        if spec.draft_max > MAX_DRAFT:
            raise SpecchatError(f"draft_max must be at most {MAX_DRAFT} (got {spec.draft_max})")
        if spec.mode is DraftMode.MODEL:
            if self.draft_model is None:
                raise SpecchatError("speculative mode 'model' needs a draft model (--draft PATH)")
            if self._mismatch is not None:
                if not spec.cross_vocab:
                    raise vocab_mismatch_error(self.target, self.draft_model, self._mismatch)
                from specchat.engine.crossvocab import CrossVocabDrafter

                self._drafter = CrossVocabDrafter(self.target, self.draft_model, spec.p_min)
            else:
                self._drafter = ModelDrafter(self.draft_model, spec.p_min)
        elif spec.mode is DraftMode.LOOKUP:
            self._drafter = LookupDrafter(spec.lookup_ngram_max, spec.lookup_ngram_min)
        else:
            self._drafter = None
        self._said_off = False
        old = getattr(self, "controller", None)
        same_drafter = old is not None and self._spec.mode is spec.mode
        self._spec = spec
        self.controller = DraftLengthController(
            draft_max=spec.draft_max if self._drafter else 0,
            adaptive=spec.adaptive,
            draft_min=spec.draft_min,
            typical_acceptance=self._drafter.typical_acceptance if self._drafter else 1.0,
        )
        if old is not None and keep_measurements:
            self.controller.learn_from(old, same_drafter)
        costs = self._load_costs
        if spec.mode is DraftMode.MODEL:
            self.controller.seed(costs.t_verify, costs.t_draft, costs.t_catchup)
        else:  # prompt lookup drafts for free (or nothing drafts)
            self.controller.seed(costs.t_verify, 0.0, 0.0)

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            target=self.target.info(),
            draft=self.draft_model.info() if self.draft_model else None,
            backend=backend_name(),
            mode=self._spec.mode,
            cross_vocab=self.cross_vocab,
            notices=tuple(self._notices),
        )

    def close(self) -> None:
        self.target.close()
        if self.draft_model is not None:
            self.draft_model.close()
        if self._threadpool is not None:
            self._threadpool.free()
            self._threadpool = None

    def reset_cache(self) -> None:
        """Forget both KV caches (the next request evaluates its whole prompt)."""
        self.target.reset()
        if self._drafter is not None:
            self._drafter.reset()

    def tokenize_chat(self, messages: Sequence[Message]) -> list[int]:
        text = self.template.render(messages, add_generation_prompt=True)
        tokens = self.target.tokenize(text, add_special=True, parse_special=True)
        bos = self.target.bos
        if len(tokens) >= 2 and tokens[0] == bos and tokens[1] == bos:
            tokens = tokens[1:]  # the template wrote BOS itself
        return tokens

    def chat(
        self,
        messages: Sequence[Message],
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        msgs, prompt, dropped = self._fit_context(list(messages), settings)
        if dropped:
            yield NoticeEvent(
                f"dropped the {dropped} oldest message{'s' if dropped > 1 else ''} to fit the "
                f"{self.target.n_ctx}-token context",
                kind="warning",
            )
        for event in self.generate(prompt, settings, cancel, messages=msgs):
            if isinstance(event, DoneEvent) and dropped:
                event = dataclasses.replace(event, dropped_turns=dropped)
            yield event

    def _fit_context(
        self, msgs: list[Message], settings: GenerationSettings
    ) -> tuple[list[Message], list[int], int]:
        n_ctx = self.target.n_ctx
        reserve = min(settings.max_tokens, n_ctx // 4)
        dropped = 0
        prompt = self.tokenize_chat(msgs)
        while len(prompt) + reserve > n_ctx:
            first = next((i for i, m in enumerate(msgs) if m.role != "system"), None)
            if first is None or first >= len(msgs) - 1:  # only the last message is left
                break
            # drop a whole turn: the oldest user message and the assistant reply after it
            count = 2 if first + 1 < len(msgs) - 1 and msgs[first + 1].role == "assistant" else 1
            del msgs[first : first + count]
            dropped += count
            prompt = self.tokenize_chat(msgs)
        if len(prompt) >= n_ctx:
            raise ContextOverflowError(
                f"prompt is {len(prompt)} tokens but the context holds {n_ctx}; "
                "shorten it or raise n_ctx"
            )
        return msgs, prompt, dropped

    # ---- the loop ------------------------------------------------------------------------------

    def generate(
        self,
        prompt: Sequence[int],
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
        messages: Sequence[Message] | None = None,
    ) -> Iterator[Event]:
        """Continue `prompt` (target token ids). Reuses the KV cache's common prefix.

        `messages` (the conversation the prompt was rendered from) lets a cross-vocabulary
        draft render it with its own chat template."""
        t_start = time.perf_counter()
        target, drafter, ctrl = self.target, self._drafter, self.controller
        n_ctx = target.n_ctx
        if not prompt:
            raise SpecchatError("empty prompt")
        if len(prompt) >= n_ctx:
            raise ContextOverflowError(
                f"prompt is {len(prompt)} tokens but the context holds {n_ctx}; "
                "shorten it or raise n_ctx"
            )
        rng = np.random.default_rng(settings.seed)
        if drafter is not None:
            drafter.begin(prompt, messages)
        stats = Stats(
            prompt_tokens=len(prompt),
            cross_vocab=self.cross_vocab and drafter is not None,
            mode=self._spec.mode.value if drafter is not None else DraftMode.NONE.value,
            draft_max=ctrl.draft_max,
        )

        def pick(logits: np.ndarray) -> int:
            if settings.greedy:
                return greedy(logits)
            return sample(distribution(logits, settings), rng)

        # Prompt: evaluate only what the cache does not already hold.
        keep = common_prefix(target.tokens, prompt)
        if keep == len(prompt):
            keep -= 1  # the last token must be evaluated again for its logits
        target.truncate(keep)
        stats.cached_prompt_tokens = len(target.tokens)
        target.decode(prompt[len(target.tokens) :], logits="last")
        if drafter is not None and ctrl.expects_to_draft():
            drafter.prepare(prompt)  # the draft reads the prompt too, before the first token
        pending: list[tuple[int, Origin]] = [(pick(target.logits(-1)), Origin.TARGET)]
        t_first = time.perf_counter()
        stats.prompt_ms = (t_first - t_start) * 1000
        stats.ttft_ms = stats.prompt_ms
        stats.target_passes = 1

        seq = list(prompt)  # every token so far; the target's cache holds all but the last
        out_ids: list[int] = []
        stream = TextStream(settings.stop)
        finish = ""
        while True:
            for token, origin in pending:
                seq.append(token)
                if target.is_eog(token):
                    finish = "stop"
                    break
                out_ids.append(token)
                text = stream.feed(target.piece(token))
                yield TokenEvent(text, token, origin)
                if stream.stopped:
                    finish = "stop"
                    break
                if len(out_ids) >= settings.max_tokens:
                    finish = "length"
                    break
            stats.generated_tokens = len(out_ids)
            self._update_rates(stats, t_first)
            if finish:
                break
            yield ProgressEvent(dataclasses.replace(stats))
            if cancel is not None and cancel.is_set():
                finish = "cancelled"
                break
            room = n_ctx - len(seq)  # the last token plus k drafts must fit
            if room < 0:
                finish = "context"
                break

            # One round: draft up to k tokens, verify them with the last token in one pass.
            t_round = time.perf_counter()
            k = 0
            if drafter is not None:
                limit = min(room, settings.max_tokens - len(out_ids) - 1)
                k = ctrl.next_k(limit, lag=lambda: drafter.lag(seq))
            draft_tokens: list[int] = []
            q = None
            draft_s = paused_s = catchup_s = 0.0
            catchup_tokens = 0
            if k > 0 and drafter is not None:
                draft = drafter.propose(seq, k, settings, rng)
                draft_tokens, q = draft.tokens[:k], draft.q
                # Catching up on the last round's 1-2 tokens is part of every round's draft
                # cost; catching up after speculation was off is not (charge 2 tokens' worth).
                steady = min(1.0, 2 / max(draft.catchup_tokens, 1))
                draft_s = draft.draft_s + draft.catchup_s * steady
                paused_s = draft.catchup_s * (1 - steady)
                catchup_s, catchup_tokens = draft.catchup_s, draft.catchup_tokens
            n_before = len(target.tokens)
            t_verify = time.perf_counter()
            target.decode([seq[-1], *draft_tokens], logits="all" if draft_tokens else "last")
            if not draft_tokens:
                pending = [(pick(target.logits(-1)), Origin.TARGET)]
                accepted = 0
            else:
                if settings.greedy:
                    verdict = verify_greedy(target.logits, draft_tokens)
                else:
                    verdict = verify_sampling(target.logits, draft_tokens, q, settings, rng)
                accepted = verdict.accepted
                target.truncate(n_before + 1 + accepted)
                pending = [(t, Origin.DRAFT) for t in draft_tokens[:accepted]]
                pending.append((verdict.next_token, Origin.TARGET))
            t_end = time.perf_counter()
            stats.target_passes += 1
            stats.drafted += len(draft_tokens)
            stats.accepted += accepted
            if drafter is not None:
                ctrl.record(
                    drafted=len(draft_tokens),
                    accepted=accepted,
                    draft_s=draft_s,
                    verify_s=t_end - t_verify,
                    round_s=t_end - t_round - paused_s,
                    catchup_s=catchup_s,
                    catchup_tokens=catchup_tokens,
                )
                stats.draft_max = ctrl.last_k if ctrl.adaptive else ctrl.draft_max

        if cancel is not None and cancel.is_set() and not finish:
            finish = "cancelled"
        tail = stream.flush()
        if tail:
            yield TokenEvent(tail, -1, Origin.TARGET)
        stats.generated_tokens = len(out_ids)
        stats.finish_reason = finish
        self._update_rates(stats, t_first)
        announce = drafter is not None and ctrl.switched_off and not self._said_off
        self._said_off = drafter is not None and ctrl.switched_off  # say it once, not every reply
        if announce:
            yield NoticeEvent(
                f"speculation is off for now: {ctrl.reason()}; it is tried again when a try costs "
                f"under {PROBE_SHARE:.0%} of the time since the last one"
            )
        yield DoneEvent(stream.text, tuple(out_ids), stats)

    @staticmethod
    def _update_rates(stats: Stats, t_first: float) -> None:
        stats.generation_ms = (time.perf_counter() - t_first) * 1000
        decoded = stats.generated_tokens - 1  # the first token came with the prompt pass
        stats.tokens_per_second = decoded / (stats.generation_ms / 1000) if decoded > 0 else 0.0
        stats.acceptance_rate = stats.accepted / stats.drafted if stats.drafted else 0.0
        passes = stats.target_passes
        stats.tokens_per_pass = stats.generated_tokens / passes if passes else 0.0
