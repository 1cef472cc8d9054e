"""What a domain package adds to Nexus, declared in one place: its ``Domain``.

Each domain package has a ``domain.py`` that builds one ``Domain`` from its
own modules; ``nexus.domains`` lists them, and the app factory, the worker
and Alembic all read that list. A domain declares:

- ``blueprints``: ``(blueprint, prefix)`` pairs, mounted at ``/api/v1<prefix>``;
- ``job_modules``: the modules whose ``@job_type`` functions it brings (they
  register on import, in web and worker processes alike);
- ``commands``: ``flask --app nexus`` commands and groups;
- ``models``: the modules whose tables Alembic manages;
- ``codes`` and ``errors``: problem codes of its own, and which of its
  domain errors (``nexus.errors``) map to which code;
- ``settings``: a ``DomainSettings`` subclass of its own variables, loaded
  and validated with the app's (read with ``domain_settings(cls)``);
- ``subscribers``: functions run inside another domain's transaction when it
  publishes an event (``nexus.infrastructure.events``);
- ``init_app``: anything else it sets up on the app (extensions, hooks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TypeVar

import click
from flask import Blueprint, Flask, current_app
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from nexus.api.errors import ErrorCode
from nexus.config import ConfigError
from nexus.errors import DomainError
from nexus.infrastructure.events import Event, Subscriber

SETTINGS_KEY = "nexus.domain_settings"
S = TypeVar("S", bound="DomainSettings")


class DomainSettings(BaseSettings):
    """Base of a domain's own settings: ``NEXUS_`` variables, validated at start-up.

    Subclass it with a prefix of the domain's own, e.g.
    ``model_config = SettingsConfigDict(env_prefix="NEXUS_WIDGETS_")``, and
    document each variable in ``.env.example``.
    """

    model_config = SettingsConfigDict(env_prefix="NEXUS_", extra="ignore", env_ignore_empty=True)


@dataclass(frozen=True)
class Domain:
    """Everything one domain package adds to the app, the worker and Alembic."""

    name: str
    blueprints: Sequence[tuple[Blueprint, str]] = ()
    job_modules: Sequence[ModuleType] = ()
    commands: Sequence[click.Command] = ()
    models: Sequence[ModuleType] = ()
    codes: Sequence[ErrorCode] = ()
    errors: Mapping[type[DomainError], ErrorCode] = field(default_factory=dict)
    settings: type[DomainSettings] | None = None
    subscribers: Mapping[type[Event], Sequence[Subscriber]] = field(default_factory=dict)
    init_app: Callable[[Flask], None] | None = None


def load_domain_settings(
    domains: Sequence[Domain], env: str
) -> dict[type[DomainSettings], DomainSettings]:
    """Each domain's settings from the environment, or one ``ConfigError`` naming every problem."""
    loaded: dict[type[DomainSettings], DomainSettings] = {}
    problems: list[tuple[str, str]] = []
    for domain in domains:
        if domain.settings is None:
            continue
        try:
            loaded[domain.settings] = domain.settings()
        except ValidationError as exc:
            prefix = domain.settings.model_config.get("env_prefix", "")
            for error in exc.errors(include_url=False, include_input=False):
                name = str(error["loc"][0]).upper() if error["loc"] else "?"
                problems.append((f"{prefix}{name}", error["msg"].removeprefix("Value error, ")))
    if problems:
        raise ConfigError(env, problems)
    return loaded


def domain_settings(cls: type[S]) -> S:
    """The current app's instance of a domain's settings class."""
    settings: S = current_app.extensions[SETTINGS_KEY][cls]
    return settings


def subscribers_of(domains: Sequence[Domain]) -> dict[type[Event], list[Subscriber]]:
    """Every domain's subscribers, per event, in the order the domains are listed."""
    combined: dict[type[Event], list[Subscriber]] = {}
    for domain in domains:
        for kind, handlers in domain.subscribers.items():
            combined.setdefault(kind, []).extend(handlers)
    return combined
