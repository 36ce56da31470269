"""The logged conversations (chat, generate and serve turns): found and read back for `drift-local logs`."""

from __future__ import annotations

from drift_local.store.store import ConversationSummary, Message, Store


def find_conversations(profile: str | None = None, query: str | None = None, n: int = 20) -> list[ConversationSummary]:
    """The `n` most recent conversations, of one profile and with a message containing `query` when given."""
    with Store.open() as store:
        target = store.get_profile(profile) if profile else None
        return store.list_conversations(target, query, n)


def read_conversation(conversation_id: int) -> tuple[ConversationSummary, list[Message]]:
    with Store.open() as store:
        return store.conversation(conversation_id), store.conversation_messages(conversation_id)
