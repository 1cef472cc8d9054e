"""A test-only domain, ``widgets``, that uses every way a domain plugs into Nexus.

In a real fork these would be ``src/nexus/widgets/{models,errors,services,
routes,jobs,cli,domain}.py``; here they share one module. It is *not* in
``nexus.domains``: tests build an app with it added.
"""

from __future__ import annotations

import uuid

import click
from flask import Blueprint, Flask, Response
from flask.cli import with_appcontext
from pydantic_settings import SettingsConfigDict
from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm import Session as OrmSession

from nexus.accounts import auth
from nexus.accounts.events import UserCreated
from nexus.api.envelope import data
from nexus.api.errors import ErrorCode
from nexus.api.validation import RequestModel, validate
from nexus.domain import Domain, DomainSettings, domain_settings
from nexus.errors import Conflict
from nexus.infrastructure.database import Base, get_session, transaction
from nexus.jobs import services as job_services
from nexus.jobs.registry import job_type

# --- models ----------------------------------------------------------------


class Widget(Base):
    __tablename__ = "test_widgets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(50))
    recounted: Mapped[int] = mapped_column(default=0)


# --- settings and errors ------------------------------------------------------


class WidgetSettings(DomainSettings):
    model_config = SettingsConfigDict(env_prefix="NEXUS_WIDGETS_")

    max_per_user: int = 3


class TooManyWidgets(Conflict):
    """The owner has NEXUS_WIDGETS_MAX_PER_USER widgets already."""


E_TOO_MANY_WIDGETS = ErrorCode(
    "E_TOO_MANY_WIDGETS", 409, "Too many widgets", "The owner has as many widgets as allowed."
)


# --- services ------------------------------------------------------------------


def create_widget(*, session: Session, owner_id: uuid.UUID, name: str, limit: int) -> Widget:
    owned = session.scalar(select(func.count()).where(Widget.owner_id == owner_id)) or 0
    if owned >= limit:
        raise TooManyWidgets(f"You have {owned} widgets; the limit is {limit}.")
    widget = Widget(owner_id=owner_id, name=name)
    session.add(widget)
    session.flush()
    return widget


def give_a_starter_widget(session: OrmSession, event: UserCreated) -> None:
    """Subscriber: every new user gets one, in the transaction that creates them."""
    if event.email.startswith("refuse"):
        raise RuntimeError("this domain refuses the user")  # rolls the user back too
    session.add(Widget(owner_id=event.user_id, name="starter"))
    session.flush()


# --- jobs ------------------------------------------------------------------------


@job_type("widgets.recount", priority="low")
def recount(widget_id: str) -> dict[str, int]:
    session = get_session()
    with transaction(session):
        widget = session.get(Widget, uuid.UUID(widget_id))
        if widget is None:
            return {"recounted": 0}
        widget.recounted += 1
        return {"recounted": widget.recounted}


# --- routes --------------------------------------------------------------------


class WidgetIn(RequestModel):
    name: str


bp = Blueprint("widgets", __name__)


@bp.post("/widgets")
@auth.require_auth
@validate(body=WidgetIn)
def post_widget(body: WidgetIn) -> Response:
    session = get_session()
    with transaction(session):
        widget = create_widget(
            session=session,
            owner_id=auth.current().id,
            name=body.name,
            limit=domain_settings(WidgetSettings).max_per_user,
        )
        job = job_services.enqueue(session, "widgets.recount", widget_id=str(widget.id))
    return data({"id": str(widget.id), "job_id": str(job.id)}, status=201)


# --- commands ------------------------------------------------------------------


@click.command("widgets-count")
@with_appcontext
def count_command() -> None:
    """Print how many widgets exist."""
    click.echo(str(get_session().scalar(select(func.count()).select_from(Widget))))


# --- the domain --------------------------------------------------------------------


def _init_app(app: Flask) -> None:
    app.extensions["widgets.ready"] = True


domain = Domain(
    name="widgets",
    blueprints=((bp, ""),),
    job_modules=(),  # this module is its own job module; a package lists its jobs.py
    commands=(count_command,),
    models=(),
    codes=(E_TOO_MANY_WIDGETS,),
    errors={TooManyWidgets: E_TOO_MANY_WIDGETS},
    settings=WidgetSettings,
    subscribers={UserCreated: [give_a_starter_widget]},
    init_app=_init_app,
)
