"""In-transaction events: one domain reacts to another's change without the two knowing each other.

A domain that changes something others may care about defines the event
(``accounts.events.UserCreated``) and publishes it, with its session, inside
the transaction that makes the change. Every subscriber runs at once, in
that transaction, in the order the domains are listed: if one raises, the
whole change rolls back. Work that should wait for the commit is enqueued
from the subscriber as a job. Subscribers are declared by domains
(``Domain.subscribers``) and belong to the app, so an app built with an
extra domain has that domain's subscribers and no other app does.
Imports no feature package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy.orm import Session

EXTENSION_KEY = "nexus.subscribers"


class Event:
    """Base class of every event; subclasses are frozen dataclasses of ids and values."""


Subscriber = Callable[[Session, Any], None]


def init_app(app: Flask, subscribers: Mapping[type[Event], Sequence[Subscriber]]) -> None:
    app.extensions[EXTENSION_KEY] = {kind: tuple(each) for kind, each in subscribers.items()}


def publish(session: Session, event: Event) -> None:
    """Run every subscriber of ``type(event)`` now, inside the caller's transaction."""
    if not has_app_context():
        # Without the app there is no list of subscribers: silently skipping
        # them would leave the change half-done (a user without a library).
        raise RuntimeError(f"publish({type(event).__name__}) needs an app context")
    subscribers: dict[type[Event], tuple[Subscriber, ...]] = current_app.extensions[EXTENSION_KEY]
    for handler in subscribers.get(type(event), ()):
        handler(session, event)
