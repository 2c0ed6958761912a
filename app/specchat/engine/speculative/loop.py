"""The generation loop: draft, verify in one batched target pass, emit, roll back, repeat.

One SpeculativeEngine owns both models and must be used from one thread at a time."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specchat.engine.context import (
    REFILL_SHARE,
    drop_oldest_turn,
    drop_prefix,
    prompt_budget,
)
from specchat.engine.limits import check_settings
from specchat.engine.llama import devices
from specchat.engine.llama.compat import vocab_mismatch, vocab_mismatch_error
from specchat.engine.llama.devices import backend as backend_name
from specchat.engine.llama.model import DecodeAborted, LlamaModel, default_threads
from specchat.engine.llama.prompt_cache import PromptCache, attach, restore_prefix, save_state
from specchat.engine.llama.template import CHATML, ChatTemplate
from specchat.engine.llama.textstream import TextStream
from specchat.engine.llama.threads import SharedThreadpool
from specchat.engine.speculative.adaptive import PROBE_SHARE
from specchat.engine.speculative.constraint import Constraint
from specchat.engine.speculative.costs import CostModel, LoadCosts, measure_load_costs, warm_up
from specchat.engine.speculative.drafting import (
    NO_DRAFT,
    Draft,
    DrafterChain,
    ModelDrafter,
    Proposer,
    build_chain,
    common_prefix,
)
from specchat.engine.speculative.learned import LearnedStore, learned_key
from specchat.engine.speculative.logprobs import token_logprob
from specchat.engine.speculative.sampling import distribution, greedy, sample
from specchat.engine.speculative.suffix import SuffixHistory
from specchat.engine.speculative.verify import known_prefix, verify_greedy, verify_sampling
from specchat.engine.types import (
    DoneEvent,
    DrafterKind,
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
    TokenLogprob,
)
from specchat.errors import ContextOverflowError, GpuOffloadError, LoadCancelled, SpecchatError


def _open_with_cpu_fallback(
    settings: ModelSettings,
    pool: SharedThreadpool | None,
    notices: list[str],
    cancel: threading.Event | None = None,
) -> LlamaModel:
    """Load a model; when GPU offload fails (out of GPU memory...), load it on the CPU and say
    so rather than fail."""
    if cancel is not None and cancel.is_set():
        raise LoadCancelled(f"loading {Path(settings.path).name} was cancelled")
    try:
        model = LlamaModel.open(settings, threadpool=pool, cancel=cancel)
    except GpuOffloadError as exc:
        if settings.n_gpu_layers == 0 or settings.rpc_servers:  # RPC: no silent CPU fallback
            raise
        model = LlamaModel.open(
            dataclasses.replace(settings, n_gpu_layers=0), threadpool=pool, cancel=cancel
        )
        fewer = (f"lower than {settings.n_gpu_layers}" if settings.n_gpu_layers > 0
                 else f"to a layer count, lower than {model.n_layers + 1}")  # -1: all of them
        notices.append(
            f"{exc.message} -- loaded {Path(settings.path).name} on the CPU instead "
            f"(to keep part of it on the GPU, set n_gpu_layers {fewer})"
        )
        return model
    if settings.n_gpu_layers and not settings.rpc_servers and not devices.has_gpu():
        notices.append(
            f"n_gpu_layers {settings.n_gpu_layers} for {Path(settings.path).name}, but "
            f"{devices.no_gpu_reason()} -- running it on the CPU"
        )
    return model


@dataclass
class _Reply:
    """The state of one reply while it is generated."""

    settings: GenerationSettings
    rng: np.random.Generator
    drafter: DrafterChain | None  # None: the target alone (for this reply)
    stats: Stats
    seq: list[int]  # every token so far; the target's cache holds all but the last
    stream: TextStream
    out_ids: list[int] = field(default_factory=list)
    pending: list[tuple[int, Origin]] = field(default_factory=list)  # to emit next
    draft_kind: DrafterKind | None = None  # which drafter proposed the pending DRAFT tokens
    finish: str = ""
    t_first: float = 0.0
    notices: list[Event] = field(default_factory=list)  # to say before the next tokens
    constraint: Constraint | None = None  # the grammar every target pick follows
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)  # of `pending`

    def note_logprobs(self, rows: Callable[[int], np.ndarray]) -> None:
        """When asked for: each pending token's log-probability, from the row that chose or
        verified it (row i for pending[i]; read before the next pass)."""
        top = self.settings.logprobs
        if top is not None:
            self.pending_logprobs = [
                token_logprob(rows(i), token, top) for i, (token, _) in enumerate(self.pending)
            ]

    def pick(self, logits: np.ndarray) -> int:
        """The target's own token from one row of logits (under the grammar, if any)."""
        if self.constraint is not None:
            token = self.constraint.pick(logits, self.settings, self.rng)
            self.constraint.accept(token)
            return token
        if self.settings.greedy:
            token = greedy(logits)
        else:
            token = sample(distribution(logits, self.settings), self.rng)
        if self.constraint is not None:
            self.constraint.accept(token)
        return token


def _stateful_reason(target: LlamaModel, draft: LlamaModel | None) -> str | None:
    """Speculation rolls a model's cache back after each rejection; the state of a recurrent
    or hybrid model (Mamba, RWKV, Jamba, LFM2, Qwen3-Next...) cannot be rolled back."""
    for role, model in (("target", target), ("draft", draft)):
        if model is not None and model.keeps_state:
            return (
                f"the {role} {model.path.name} is a recurrent or hybrid model, whose state "
                "cannot be rolled back after a rejected draft: running the target alone, "
                "without speculation"
            )
    return None


def _describe(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())  # one line


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
        self._busy = threading.RLock()  # held while a step of a reply uses the models
        self._closing = False
        self._draft_failures: set[str] = set()  # reasons already said
        self._dropped_before: list[Message] = []  # turns left out of the last request
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
            name=target.path.name,
        )
        self._spec = spec
        self._drafter: DrafterChain | None = None
        # What target passes and drafted tokens cost on this machine: shared by the drafters,
        # kept across settings changes (costs.CostModel).
        self.costs = CostModel()
        self._prompt_cache: PromptCache | None = None
        self._history: SuffixHistory | None = None  # earlier requests (use_suffix_history)
        self._threadpool: SharedThreadpool | None = None
        # Why speculation cannot run with these models at all (said once, at load).
        self._no_speculation = _stateful_reason(target, draft)
        if self._no_speculation:
            self._notices.append(self._no_speculation)
        warm_up(target)
        self._load_costs = LoadCosts()
        if draft is not None and not self._no_speculation:
            warm_up(draft)
            if self._learned_state(spec) is None:  # else the last run's costs are better
                self._load_costs = measure_load_costs(target, draft, spec.draft_max)
        self.set_spec(spec)

    @classmethod
    def load(
        cls,
        target: ModelSettings,
        draft: ModelSettings | None,
        spec: SpecSettings,
        chat_template: str | None = None,
        cancel: threading.Event | None = None,
    ) -> SpeculativeEngine:
        """Load both models. Setting `cancel` (from another thread) stops loading midway with
        LoadCancelled; nothing stays allocated."""
        pool = SharedThreadpool(target.n_threads or default_threads()) if draft else None
        notices: list[str] = []
        target_model = draft_model = None
        try:
            target_model = _open_with_cpu_fallback(target, pool, notices, cancel)
            if target_model.rpc is not None:  # which part of the target is remote
                notices.append(f"target: {target_model.remote}")
                if target_model.rpc.servers.warning:
                    notices.append(target_model.rpc.servers.warning)
            wanted = draft is not None and spec.mode is DraftMode.MODEL
            if wanted and not target_model.keeps_state:  # else it could not draft anyway
                draft_model = _open_with_cpu_fallback(draft, pool, notices, cancel)
            if cancel is not None and cancel.is_set():
                raise LoadCancelled("loading was cancelled")
            engine = cls(target_model, draft_model, spec, chat_template)
            engine._threadpool = pool
            engine._notices[:0] = notices
            return engine
        except BaseException:
            if target_model is not None:
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
        """Change speculative settings. What was measured and learned is kept (costs, the
        suffix drafter's trust; the model's acceptance when the mode is the same) unless told
        not to."""
        check_settings(spec=spec)
        old, same_mode = self._drafter, self._spec.mode is spec.mode
        if old is None or not keep_measurements:
            self.costs = CostModel()
            load = self._load_costs
            self.costs.seed(load.t_verify, load.t_draft, load.t_catchup)
        self._spec = spec
        self._said_off = False
        self._drafter = self._build_chain(spec)
        if self._drafter is None:
            return
        if old is not None and keep_measurements:
            self._drafter.learn_from(old, same_model=same_mode)
        else:
            state = self._learned_state(spec)
            if state is not None:
                self._drafter.restore(state)

    @property
    def chain(self) -> DrafterChain | None:
        """The drafters and what they learned (None: the target alone). A benchmark swaps
        chains to give each mode its own learning."""
        return self._drafter

    @chain.setter
    def chain(self, chain: DrafterChain | None) -> None:
        self._drafter = chain
        if chain is not None:
            self.costs = chain.costs

    def _build_chain(self, spec: SpecSettings) -> DrafterChain | None:
        """The drafters these settings ask for (None: the target alone)."""
        if self._no_speculation or spec.mode is DraftMode.NONE:
            return None  # (why speculation cannot run was said at load)
        model: Proposer | None = None
        if spec.mode is DraftMode.MODEL:
            if self.draft_model is None:
                raise SpecchatError("speculative mode 'model' needs a draft model (none is loaded)")
            if self._mismatch is not None:
                if not spec.cross_vocab:
                    raise vocab_mismatch_error(self.target, self.draft_model, self._mismatch)
                from specchat.engine.speculative.crossvocab import CrossVocabDrafter

                model = CrossVocabDrafter(self.target, self.draft_model, spec.p_min)
            else:
                model = ModelDrafter(self.draft_model, spec.p_min)
        return build_chain(spec, model, self.costs)

    # ---- what the controller learned, kept between runs (learned.py) -------------------------

    def _learned_key(self, spec: SpecSettings) -> str:
        model = self.draft_model if spec.mode is DraftMode.MODEL else None
        servers = self.target.settings.rpc_servers  # remote layers: other costs, other key
        return learned_key(
            self.target.path,
            model.path if model is not None else None,
            backend_name(),
            self.target.settings.n_threads or default_threads(),
            cross_vocab=model is not None and self.cross_vocab,
            extra=f"rpc={','.join(servers)}" if servers else "",
        )

    def _learned_state(self, spec: SpecSettings) -> dict[str, object] | None:
        if spec.learned_path is None or spec.mode is DraftMode.NONE:
            return None
        return LearnedStore(spec.learned_path).load(self._learned_key(spec))

    def _save_learned(self) -> None:
        spec = self._spec
        if spec.learned_path is not None and self._drafter is not None:
            LearnedStore(spec.learned_path).save(self._learned_key(spec), self._drafter.snapshot())

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
        """Free both models. Safe from another thread while a reply is generated: a long pass
        is aborted, a short one finishes, and that reply ends ("cancelled")."""
        self._closing = True
        for model in (self.target, self.draft_model):
            if model is not None:
                model.abort_passes()
        with self._busy:
            self.target.close()
            if self.draft_model is not None:
                self.draft_model.close()
            if self._threadpool is not None:
                self._threadpool.free()
                self._threadpool = None

    def use_prompt_cache(self, cache: PromptCache | None) -> None:
        """Save both models' states after each reply and restore them before a prompt pass
        (engine/llama/prompt_cache.py); None: stop."""
        self._prompt_cache = cache
        attach(cache, self.target, "target")
        attach(cache, self.draft_model, "draft")

    def use_suffix_history(self, history: SuffixHistory | None) -> None:
        """Keep every finished request's prompt and reply in `history`, and let the suffix
        drafter copy from it (the server's index of earlier requests); None: the conversation
        alone (what the chat app does)."""
        self._history = history

    def reset_cache(self) -> None:
        """Forget both KV caches (the next request evaluates its whole prompt)."""
        self.target.reset()
        if self._drafter is not None:
            self._drafter.reset()

    def count_tokens(self, messages: Sequence[Message]) -> int:
        with self._busy:  # the tokenizer is the target's: not while closing
            return len(self.tokenize_chat(list(messages)))

    def tokenize_chat(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None
    ) -> list[int]:
        """The prompt for `messages` (and OpenAI-style `tools`, given to the template)."""
        text = self.template.render(messages, add_generation_prompt=True, tools=tools)
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
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> Iterator[Event]:
        """`tools`: OpenAI-style function definitions, rendered by the chat template."""
        with self._busy:  # the template and tokenizer are the target's: not while closing
            if self._closing:
                yield DoneEvent("", (), Stats(finish_reason="cancelled"))
                return
            msgs, prompt, dropped = self._fit_context(list(messages), settings, tools)
        if dropped:
            yield NoticeEvent(
                f"dropped the {dropped} oldest message{'s' if dropped > 1 else ''} to fit the "
                f"{self.target.n_ctx}-token context",
                kind="warning",
            )
        yield from self._generate_fitted(prompt, msgs, dropped, settings, cancel)

    def continue_(
        self,
        messages: Sequence[Message],
        partial: str,
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """Continue a reply that stopped: the prompt is the conversation rendered with the
        generation prompt, followed by the partial reply's tokens (no template renders an
        unfinished assistant turn reliably). Events carry only the new text."""
        with self._busy:
            if self._closing:
                yield DoneEvent("", (), Stats(finish_reason="cancelled"))
                return
            msgs, prompt, dropped = self._fit_context(list(messages), settings)
            prompt = prompt + self.target.tokenize(partial, add_special=False, parse_special=False)
        yield from self._generate_fitted(prompt, msgs, dropped, settings, cancel)

    def _generate_fitted(
        self,
        prompt: list[int],
        msgs: list[Message],
        dropped: int,
        settings: GenerationSettings,
        cancel: threading.Event | None,
    ) -> Iterator[Event]:
        """`generate` for a prompt `_fit_context` made; its DoneEvent tells the turns dropped."""
        for event in self.generate(prompt, settings, cancel, messages=msgs):
            if isinstance(event, DoneEvent) and dropped:
                event = dataclasses.replace(event, dropped_turns=dropped)
            yield event

    def _fit_context(
        self,
        msgs: list[Message],
        settings: GenerationSettings,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> tuple[list[Message], list[int], int]:
        """Drop the oldest turns when the conversation does not fit. The turns dropped for the
        last request are dropped again first, so the prompt keeps its prefix in the cache; when
        more must go, enough goes at once that the next several turns fit behind the same
        prefix (instead of re-reading the whole prompt every turn)."""
        n_ctx = self.target.n_ctx
        budget = prompt_budget(n_ctx, settings.max_tokens)
        prompt = self.tokenize_chat(msgs, tools)
        gone: list[Message] = []
        if len(prompt) > budget and drop_prefix(msgs, self._dropped_before):
            gone = list(self._dropped_before)
            prompt = self.tokenize_chat(msgs, tools)
        if len(prompt) > budget:
            while len(prompt) > budget * REFILL_SHARE and (turn := drop_oldest_turn(msgs)):
                gone += turn
                prompt = self.tokenize_chat(msgs, tools)
        self._dropped_before = gone
        dropped = len(gone)
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
        self._check_prompt(prompt)
        reply = self._start_reply(prompt, settings)
        self._use_cancel(cancel)
        try:
            with self._busy:  # close() waits for a step; no model is freed under it
                self._prefill(reply, prompt, messages)
                self._prompt_cache_report(reply)
            reply.t_first = time.perf_counter()
            reply.stats.prompt_ms = (reply.t_first - t_start) * 1000
            reply.stats.ttft_ms = reply.stats.prompt_ms
            reply.stats.target_passes = 1
            while not reply.finish:
                with self._busy:
                    events = self._emit(reply) if self._open(reply) else []
                yield from self._said(reply)
                yield from events
                if reply.finish:
                    break
                yield ProgressEvent(dataclasses.replace(reply.stats))
                if cancel is not None and cancel.is_set():
                    reply.finish = "cancelled"
                    break
                room = self.target.n_ctx - len(reply.seq)  # the last token plus k drafts fit
                if room < 0:
                    reply.finish = "context"
                    break
                with self._busy:
                    if self._open(reply):
                        self._round(reply, room)
        finally:
            self._use_cancel(None)
        yield from self._said(reply)
        yield from self._finish(reply, cancel)

    def _prefill(
        self, reply: _Reply, prompt: Sequence[int], messages: Sequence[Message] | None
    ) -> None:
        """Bring the drafter and the target's cache to the prompt and pick the first token;
        a cancel during prompt processing ends the reply here ("cancelled")."""
        try:
            self._drafter_step(reply, "reading the conversation", "begin", prompt, messages)
            self._sync_prompt(prompt, reply)
            if reply.drafter is not None and reply.drafter.expects_model_drafts():
                # the draft reads the prompt too, before the first token
                self._drafter_step(reply, "reading the prompt", "prepare", prompt)
            reply.pending = [(reply.pick(self.target.logits(-1)), Origin.TARGET)]
            reply.note_logprobs(lambda _: self.target.logits(-1))
        except DecodeAborted:
            reply.finish = "cancelled"

    def _open(self, reply: _Reply) -> bool:
        """False (and the reply ends, "cancelled") once close() has begun."""
        if self._closing:
            reply.finish = reply.finish or "cancelled"
        return not self._closing

    def _use_cancel(self, cancel: threading.Event | None) -> None:
        """Long passes of either model (prompt processing, catch-up) stop when `cancel` is set."""
        for model in (self.target, self.draft_model):
            if model is not None:
                model.cancel = cancel

    def _drafter_step(self, reply: _Reply, doing: str, method: str, *args: object) -> object:
        """Call one drafter method. A failure on the draft side (its context overflowing, its
        template, a decode error...) ends drafting for this reply, which goes on with the
        target alone; why is said once. A cancel (DecodeAborted) is not a failure."""
        drafter = reply.drafter
        if drafter is None:
            return None
        try:
            return getattr(drafter, method)(*args)
        except DecodeAborted:
            raise
        except Exception as exc:
            reply.drafter = None
            reason = exc.message if isinstance(exc, SpecchatError) else _describe(exc)
            with contextlib.suppress(Exception):
                drafter.reset()  # its cache is re-read from scratch next time
            if reason not in self._draft_failures:
                self._draft_failures.add(reason)
                reply.notices.append(
                    NoticeEvent(
                        f"the draft failed while {doing} ({reason}); this reply continues with "
                        "the target alone",
                        kind="warning",
                    )
                )
            return None

    @staticmethod
    def _said(reply: _Reply) -> list[Event]:
        notices, reply.notices = reply.notices, []
        return notices

    def _check_prompt(self, prompt: Sequence[int]) -> None:
        if not prompt:
            raise SpecchatError("empty prompt")
        n_ctx = self.target.n_ctx
        if len(prompt) >= n_ctx:
            raise ContextOverflowError(
                f"prompt is {len(prompt)} tokens but the context holds {n_ctx}; "
                "shorten it or raise n_ctx"
            )

    def _start_reply(self, prompt: Sequence[int], settings: GenerationSettings) -> _Reply:
        drafter = self._drafter
        stats = Stats(
            prompt_tokens=len(prompt),
            cross_vocab=self.cross_vocab and drafter is not None,
            mode=self._spec.mode.value if drafter is not None else DraftMode.NONE.value,
            draft_max=self._spec.draft_max if drafter is not None else 0,
        )
        if drafter is not None and drafter.suffix is not None:
            # Sampling with a seed: the same request gives the same reply only if it is drafted
            # the same (the draws verification uses depend on the drafts), so it copies from its
            # own conversation alone, as the identical earlier request did.
            seeded = not settings.greedy and settings.seed is not None
            drafter.suffix.history = None if seeded else self._history
        constraint = None
        if settings.grammar is not None:
            constraint = Constraint(self.target.vocab, self.target.n_vocab, settings.grammar)
        return _Reply(
            settings=settings,
            rng=np.random.default_rng(settings.seed),
            drafter=drafter,
            stats=stats,
            seq=list(prompt),
            stream=TextStream(settings.stop),
            constraint=constraint,
        )

    def _sync_prompt(self, prompt: Sequence[int], reply: _Reply) -> None:
        """Prefill: evaluate only the part of the prompt the target's cache does not hold."""
        target = self.target
        restore_prefix(target, prompt)  # a saved state, when it shares more than the cache
        keep = common_prefix(target.tokens, prompt)
        if keep == len(prompt):
            keep -= 1  # the last token must be evaluated again for its logits
        if target.keeps_state and keep < len(target.tokens):
            target.reset()  # a recurrent state cannot lose a suffix: read the prompt again
        else:
            target.truncate(keep)
        reply.stats.cached_prompt_tokens = len(target.tokens)
        target.decode(prompt[len(target.tokens) :], logits="last")

    def _emit(self, reply: _Reply) -> list[Event]:
        """The round's pending tokens as events; sets reply.finish at EOS, a stop string or the
        length limit."""
        target, stats = self.target, reply.stats
        events: list[Event] = []
        for i, (token, origin) in enumerate(reply.pending):
            reply.seq.append(token)
            if target.is_eog(token):
                reply.finish = "stop"
                break
            reply.out_ids.append(token)
            text = reply.stream.feed(target.piece(token))
            kind = reply.draft_kind if origin is Origin.DRAFT else None
            logprob = reply.pending_logprobs[i] if reply.pending_logprobs else None
            events.append(TokenEvent(text, token, origin, drafter=kind, logprob=logprob))
            if reply.stream.stopped:
                reply.finish = "stop"
                break
            if len(reply.out_ids) >= reply.settings.max_tokens:
                reply.finish = "length"
                break
        stats.generated_tokens = len(reply.out_ids)
        self._update_rates(stats, reply.t_first)
        return events

    def _round(self, reply: _Reply, room: int) -> None:
        """One round: draft, verify the drafts with the last token in one pass, credit."""
        t_round = time.perf_counter()
        try:
            draft = self._draft(reply, room)
        except DecodeAborted:  # a long catch-up of the draft, cancelled: stop after this pass
            reply.drafter, draft = None, NO_DRAFT
        t_verify = time.perf_counter()
        accepted = self._verify(reply, draft)
        t_end = time.perf_counter()
        self._credit(reply, draft, accepted, t_end - t_verify, t_end - t_round)

    def _draft(self, reply: _Reply, room: int) -> Draft:
        """Ask the drafter chain for what pays this round (suffix drafter first, then the
        model; nothing: the target alone)."""
        if reply.drafter is None:
            return NO_DRAFT
        limit = min(room, reply.settings.max_tokens - len(reply.out_ids) - 1)
        draft = self._drafter_step(
            reply, "drafting", "draft", reply.seq, limit, reply.settings, reply.rng
        )
        return draft if isinstance(draft, Draft) else NO_DRAFT

    def _verify(self, reply: _Reply, draft: Draft) -> int:
        """Evaluate [last, d1..dk] in one target pass, keep the agreeing prefix plus the
        target's own token (pending), roll the cache back past the rest. Returns how many
        drafted tokens were accepted."""
        target, settings = self.target, reply.settings
        known = known_prefix(draft.tokens, target.n_vocab)
        # A token the target lacks (a draft with more ids) ends the draft and is rejected.
        tokens = draft.tokens = draft.tokens[: known + 1]
        n_before = len(target.tokens)
        target.decode([reply.seq[-1], *tokens[:known]], logits="all" if tokens else "last")
        if not tokens:
            reply.pending = [(reply.pick(target.logits(-1)), Origin.TARGET)]
            reply.note_logprobs(lambda _: target.logits(-1))
            return 0
        rows, constraint, pick = target.logits, reply.constraint, None
        if constraint is not None:  # rows masked by the grammar; it keeps only what is kept
            rows, pick = constraint.trial(rows, tokens, settings, reply.rng)
        if settings.greedy:
            verdict = verify_greedy(rows, tokens)
        else:
            verdict = verify_sampling(rows, tokens, draft.q, settings, reply.rng, pick)
        if constraint is not None:
            constraint.settle(tokens, verdict.accepted, verdict.next_token)
        accepted = verdict.accepted
        target.truncate(n_before + 1 + accepted)
        reply.pending = [(t, Origin.DRAFT) for t in tokens[:accepted]]
        reply.draft_kind = draft.kind
        reply.pending.append((verdict.next_token, Origin.TARGET))
        reply.note_logprobs(target.logits)
        return accepted

    def _credit(
        self, reply: _Reply, draft: Draft, accepted: int, verify_s: float, round_s: float
    ) -> None:
        """What the round cost and kept, to the stats, the cost model and the drafters."""
        stats = reply.stats
        stats.target_passes += 1
        if draft.kind is not None:
            stats.add_drafts(draft.kind, len(draft.tokens), accepted)
            stats.draft_max = len(draft.tokens)
            if draft.from_history:
                stats.history_drafted += len(draft.tokens)
                stats.history_accepted += accepted
        if reply.drafter is None:
            return
        steady_s = round_s - draft.paused_s  # a catch-up after a pause is no round's cost
        self.costs.record_pass(len(draft.tokens) + 1, verify_s)
        rest = steady_s - verify_s - (draft.draft_s if draft.tokens else 0.0)
        self.costs.record_relative(self.costs.overhead, max(rest, 0.0))
        reply.drafter.after_round(draft, accepted, steady_s)

    def _finish(self, reply: _Reply, cancel: threading.Event | None) -> Iterator[Event]:
        stats, drafter = reply.stats, reply.drafter
        ctrl = drafter.controller if drafter is not None else None
        if cancel is not None and cancel.is_set() and not reply.finish:
            reply.finish = "cancelled"
        tail = reply.stream.flush()
        if tail:
            yield TokenEvent(tail, -1, Origin.TARGET)
        stats.generated_tokens = len(reply.out_ids)
        stats.finish_reason = reply.finish
        self._update_rates(stats, reply.t_first)
        self._save_learned()
        self._keep_prompt_states(reply)
        if self._history is not None:  # what later requests may copy
            self._history.add(reply.seq)
        yield from self._said(reply)
        switched_off = ctrl is not None and ctrl.switched_off
        announce = switched_off and not self._said_off
        self._said_off = switched_off  # say it once, not every reply
        if announce and ctrl is not None and drafter is not None:
            yield NoticeEvent(
                f"speculation is off for now: {ctrl.reason()}; it is tried again when a try costs "
                f"under {PROBE_SHARE:.0%} of the time since the last one"
                + (" (text the reply copies from the conversation is still drafted)"
                   if drafter is not None and drafter.suffix is not None else "")
            )
        yield DoneEvent(reply.stream.text, tuple(reply.out_ids), stats)

    def _keep_prompt_states(self, reply: _Reply) -> None:
        """After a reply: save both caches' states in the prompt cache, if there is one."""
        if self._prompt_cache is None:
            return
        with self._busy:
            if not self._closing:
                with contextlib.suppress(DecodeAborted):
                    save_state(self.target)
                    save_state(self.draft_model)
        self._prompt_cache_report(reply)

    def _prompt_cache_report(self, reply: _Reply) -> None:
        """Credit the reply with what the prompt cache restored; pass on what it must say."""
        cache = self._prompt_cache
        if cache is None:
            return
        tally = cache.take_tally()
        reply.stats.restored_prompt_tokens += tally.restored.get("target", 0)
        reply.stats.restore_saved_ms += tally.saved_ms
        reply.notices += [NoticeEvent(m, kind="warning") for m in cache.take_notices()]

    @staticmethod
    def _update_rates(stats: Stats, t_first: float) -> None:
        stats.generation_ms = (time.perf_counter() - t_first) * 1000
        decoded = stats.generated_tokens - 1  # the first token came with the prompt pass
        stats.tokens_per_second = decoded / (stats.generation_ms / 1000) if decoded > 0 else 0.0
        stats.acceptance_rate = stats.accepted / stats.drafted if stats.drafted else 0.0
        passes = stats.target_passes
        stats.tokens_per_pass = stats.generated_tokens / passes if passes else 0.0
