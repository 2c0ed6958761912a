"""ChatStore: regenerate variants (kept, flipped, dropped) and search in message contents."""

from __future__ import annotations

from pathlib import Path

from specchat.store import ChatStore, MessageStatus


def ticking() -> object:
    now = [1_700_000_000.0]

    def clock() -> float:
        now[0] += 1
        return now[0]

    return clock


def reply(store: ChatStore, chat_id: int, text: str) -> int:
    record = store.begin_reply(chat_id)
    store.finish_reply(record.id, text, MessageStatus.COMPLETE, {"generated_tokens": 3})
    return record.id


def test_regenerate_keeps_the_old_reply_and_flips_both_ways(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "h.db", clock=ticking())  # type: ignore[arg-type]
    chat = store.create_chat("c")
    store.add_message(chat.id, "user", "q")
    first = reply(store, chat.id, "first answer")
    second = store.begin_reply(chat.id).id
    store.keep_as_variant(first, second)
    store.finish_reply(second, "second answer", MessageStatus.COMPLETE)
    assert [m.content for m in store.messages(chat.id)] == ["q", "second answer"]
    assert store.variant_positions(chat.id) == {second: (2, 2)}

    shown = store.flip_variant(second, -1)
    assert shown is not None and shown.id == second and shown.content == "first answer"
    assert shown.stats == {"generated_tokens": 3}  # the old reply's stats came back with it
    assert store.variant_positions(chat.id) == {second: (1, 2)}
    assert store.flip_variant(second, -1) is None  # already the oldest
    assert [m.content for m in store.messages(chat.id)] == ["q", "first answer"]

    again = store.flip_variant(second, +1)
    assert again is not None and again.content == "second answer"
    assert store.flip_variant(second, +1) is None

    third = store.begin_reply(chat.id).id  # regenerating again keeps both earlier ones
    store.keep_as_variant(second, third)
    store.finish_reply(third, "third answer", MessageStatus.COMPLETE)
    assert store.variant_positions(chat.id) == {third: (3, 3)}
    assert store.flip_variant(third, -1).content == "second answer"  # type: ignore[union-attr]
    assert store.flip_variant(third, -1).content == "first answer"  # type: ignore[union-attr]

    store.drop_variants(chat.id)  # the user moved on
    assert store.variant_positions(chat.id) == {}
    assert [m.content for m in store.messages(chat.id)] == ["q", "first answer"]


def test_variants_survive_reopening_and_go_with_their_chat(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = ChatStore(path, clock=ticking())  # type: ignore[arg-type]
    chat = store.create_chat("c")
    store.add_message(chat.id, "user", "q")
    old = reply(store, chat.id, "old")
    new = store.begin_reply(chat.id).id
    store.keep_as_variant(old, new)
    store.close()
    store = ChatStore(path)
    assert store.variant_positions(chat.id) == {new: (2, 2)}
    store.delete_chat(chat.id)
    count = store._conn.execute("SELECT COUNT(*) FROM reply_variants").fetchone()[0]
    assert count == 0


def test_search_finds_words_inside_messages_not_only_titles(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "h.db", clock=ticking())  # type: ignore[arg-type]
    a = store.create_chat("About cats")
    store.add_message(a.id, "user", "tell me about cats")
    b = store.create_chat("Animals")
    store.add_message(b.id, "user", "hello")
    reply(store, b.id, "The Zebra_Crossing is striped, 100% sure")
    store.add_message(b.id, "user", "and zebras again")
    assert [c.id for c in store.list_chats("zebra")] == [b.id]
    assert [c.id for c in store.list_chats("CATS")] == [a.id]  # title or content, any case
    assert [c.id for c in store.list_chats("_Cross")] == [b.id]  # LIKE wildcards are escaped
    assert store.list_chats("_x_") == []
    assert store.list_chats("100%") != [] and store.list_chats("10%0") == []
    first = store.first_match(b.id, "zebra")
    assert first == store.messages(b.id)[1].id  # the first message with the word
    assert store.first_match(b.id, "giraffe") is None
