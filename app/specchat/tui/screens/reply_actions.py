"""Actions on the last reply: continue it past the token limit, flip between the versions kept
by regenerate; and jumping to a message found by search. Mixed into MainScreen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from specchat.store import ChatRecord, ChatStore, MessageStatus
from specchat.tui.conversation import ActiveReply, engine_messages, generation_for, spec_for
from specchat.tui.history_guard import keeps_running
from specchat.tui.widgets import ChatView, StatusBar

if TYPE_CHECKING:
    from specchat.engine.types import GenerationSettings, SpecSettings
    from specchat.tui.worker import EngineWorker

CONTINUABLE = (MessageStatus.COMPLETE, MessageStatus.CANCELLED, MessageStatus.INCOMPLETE)


class ReplyActions:
    """Mixed into MainScreen: uses its attributes (below), the Screen API and _busy()."""

    store: ChatStore
    chat: ChatRecord | None
    reply: ActiveReply | None
    worker: EngineWorker | None
    engine_state: str
    generation: GenerationSettings
    base_spec: SpecSettings

    @keeps_running
    async def action_continue_reply(self) -> None:
        if self._busy() or self.chat is None:
            return
        if self.engine_state != "ready" or self.worker is None:
            self.notify("No model is loaded.", severity="warning")
            return
        chat = self.store.get_chat(self.chat.id) or self.chat
        records = self.store.messages(chat.id)
        last = records[-1] if records else None
        if last is None or last.role != "assistant" or not last.content:
            self.notify("No reply to continue.", severity="warning")
            return
        if last.status not in CONTINUABLE:
            self.notify("That reply failed: regenerate it instead.", severity="warning")
            return
        view = self.query_one(ChatView)
        box = await view.reveal(last.id)
        if box is None:
            return
        box.resume_stream()
        self.reply = ActiveReply(last.id, chat.id, box, prefix=last.content)
        self.query_one(StatusBar).start_reply()
        view.follow()
        self.worker.generate(
            last.id,
            engine_messages(chat.settings, records[:-1]),
            generation_for(self.generation, chat.settings),
            spec_for(self.base_spec, chat.settings),
            partial=last.content,
        )

    async def action_prev_variant(self) -> None:
        await self._flip(-1)

    async def action_next_variant(self) -> None:
        await self._flip(+1)

    @keeps_running
    async def _flip(self, step: int) -> None:
        if self._busy() or self.chat is None:
            return
        view = self.query_one(ChatView)
        replies = [b for b in view.boxes() if b.role == "assistant"]
        if not replies or not replies[-1].variant:
            self.notify("Regenerate keeps earlier replies here; none yet.", timeout=3)
            return
        box = replies[-1]
        record = self.store.flip_variant(box.message_id, step)
        if record is None:
            end = "first" if step < 0 else "last"
            self.notify(f"This is the {end} version of the reply.", timeout=2)
            return
        position = self.store.variant_positions(self.chat.id).get(box.message_id)
        view.variants[box.message_id] = position or (1, 1)
        await box.show_record(record, position)

    @keeps_running
    async def jump_to_match(self, search: str) -> None:
        """Scroll the open chat to its first message containing `search`, and focus it."""
        if self.chat is None or not search.strip():
            return
        message_id = self.store.first_match(self.chat.id, search)
        if message_id is None:
            return
        box = await self.query_one(ChatView).reveal(message_id)
        if box is not None:
            box.focus(scroll_visible=False)
