"""A test-only domain, ``test-gadgets``, that uses every way a domain plugs into Nexus.

In a real fork these would be ``src/nexus/gadgets/{models,errors,services,
routes,jobs,cli,domain}.py``; here they share one module. It is *not* in
``nexus.domains``: tests build an app with it added.
"""

from __future__ import annotations

import uuid

import click
from flask import Blueprint, Flask, Response
from flask.cli import with_appcontext
from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict
from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm import Session as OrmSession

from nexus.accounts import auth
from nexus.accounts.events import UserCreated
from nexus.api.contract import responds
from nexus.api.envelope import data
from nexus.api.errors import ErrorCode
from nexus.api.validation import RequestModel, validate
from nexus.domain import Domain, DomainSettings, domain_settings
from nexus.errors import Conflict
from nexus.infrastructure.database import Base, get_session, transaction
from nexus.jobs import services as job_services
from nexus.jobs.registry import job_type

# --- models ----------------------------------------------------------------


class Gadget(Base):
    __tablename__ = "test_gadgets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(50))
    recounted: Mapped[int] = mapped_column(default=0)


# --- settings and errors ------------------------------------------------------


class GadgetSettings(DomainSettings):
    model_config = SettingsConfigDict(env_prefix="NEXUS_TEST_GADGETS_")

    max_per_user: int = 3


class TooManyGadgets(Conflict):
    """The owner has NEXUS_TEST_GADGETS_MAX_PER_USER gadgets already."""


E_TEST_TOO_MANY_GADGETS = ErrorCode(
    "E_TEST_TOO_MANY_GADGETS", 409, "Too many gadgets", "The owner has as many gadgets as allowed."
)


# --- services ------------------------------------------------------------------


def create_gadget(*, session: Session, owner_id: uuid.UUID, name: str, limit: int) -> Gadget:
    owned = session.scalar(select(func.count()).where(Gadget.owner_id == owner_id)) or 0
    if owned >= limit:
        raise TooManyGadgets(f"You have {owned} gadgets; the limit is {limit}.")
    gadget = Gadget(owner_id=owner_id, name=name)
    session.add(gadget)
    session.flush()
    return gadget


def give_a_starter_gadget(session: OrmSession, event: UserCreated) -> None:
    """Subscriber: every new user gets one, in the transaction that creates them."""
    if event.email.startswith("refuse"):
        raise RuntimeError("this domain refuses the user")  # rolls the user back too
    session.add(Gadget(owner_id=event.user_id, name="starter"))
    session.flush()


# --- jobs ------------------------------------------------------------------------


@job_type("tests.gadgets.recount", priority="low")
def recount(gadget_id: str) -> dict[str, int]:
    session = get_session()
    with transaction(session):
        gadget = session.get(Gadget, uuid.UUID(gadget_id))
        if gadget is None:
            return {"recounted": 0}
        gadget.recounted += 1
        return {"recounted": gadget.recounted}


# --- routes --------------------------------------------------------------------


class GadgetIn(RequestModel):
    name: str


class GadgetOut(BaseModel):
    id: uuid.UUID
    job_id: uuid.UUID


bp = Blueprint("test_gadgets", __name__)


@bp.post("/test-gadgets")
@responds(201, GadgetOut, codes=(E_TEST_TOO_MANY_GADGETS,))
@auth.require_auth
@validate(body=GadgetIn)
def post_gadget(body: GadgetIn) -> Response:
    """Make a gadget; a job recounts the owner's gadgets."""
    session = get_session()
    with transaction(session):
        gadget = create_gadget(
            session=session,
            owner_id=auth.current().id,
            name=body.name,
            limit=domain_settings(GadgetSettings).max_per_user,
        )
        job = job_services.enqueue(session, "tests.gadgets.recount", gadget_id=str(gadget.id))
    return data(GadgetOut(id=gadget.id, job_id=job.id), status=201)


# --- commands ------------------------------------------------------------------


@click.command("test-gadgets-count")
@with_appcontext
def count_command() -> None:
    """Print how many gadgets exist."""
    click.echo(str(get_session().scalar(select(func.count()).select_from(Gadget))))


# --- the domain --------------------------------------------------------------------


def _init_app(app: Flask) -> None:
    app.extensions["test_gadgets.ready"] = True


domain = Domain(
    name="test-gadgets",
    blueprints=((bp, ""),),
    job_modules=(),  # this module is its own job module; a package lists its jobs.py
    commands=(count_command,),
    models=(),
    codes=(E_TEST_TOO_MANY_GADGETS,),
    errors={TooManyGadgets: E_TEST_TOO_MANY_GADGETS},
    settings=GadgetSettings,
    subscribers={UserCreated: [give_a_starter_gadget]},
    init_app=_init_app,
)
