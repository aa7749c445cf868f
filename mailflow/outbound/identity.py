"""Who wrote an outbound message: an app is who AWS says it is, never what its JSON claims.

Any principal allowed to write the shared outbound queue could put `"source": "app2"` in
its JSON and send as app2, with app2's attachments. SQS stamps every message with the
writer's identity (`SenderId`: an IAM role's unique id and the session name, an IAM
user's unique id, or an account id) and a writer cannot forge it; so a message is only
believed when that identity is one of the claimed app's producers (or a trusted writer:
the worker itself re-sends deferred messages, an operator replays failures). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable


def principal_of(sender_id: str) -> str:
    """`AROAEXAMPLE:session-name` -> `AROAEXAMPLE` (a role, whichever session wrote)."""
    return sender_id.split(":", 1)[0]


def writer_allowed(sender_id: str | None, allowed: Iterable[str]) -> bool:
    """True when `sender_id` is, or is a session of, one of the `allowed` principals."""
    if not sender_id:
        return False
    names = set(allowed)
    return sender_id in names or principal_of(sender_id) in names
