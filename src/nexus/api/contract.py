"""The API contract: what each route accepts and answers, declared once on the view.

A route's contract is gathered from the decorators it already wears:
``@validate`` records its body and query models and the 400/413/415 they can
answer, the auth decorators record the bearer scheme and 401/403, and
``@responds`` says what a success looks like and which other codes the route
may answer. ``nexus.api.openapi`` turns these, with the pydantic models
themselves, into the OpenAPI document; a route without ``@responds`` stops the
app from starting, so nothing reaches the URL map undocumented.

Each decorator's ``functools.wraps`` copies the view's ``__dict__``, so the
one :class:`Contract` object is shared by the view and every wrapper around it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from nexus.api.errors import ErrorCode

F = TypeVar("F", bound=Callable[..., Any])
Envelope = Literal["data", "list", "page", "bare"]


@dataclass(frozen=True)
class Success:
    """One successful answer: its status, and its body (``None``: no body)."""

    status: int
    model: type[BaseModel] | None
    # {"data": model}, {"data": [model]}, {"data": [model], "meta": ...}, or the model itself
    envelope: Envelope
    description: str
    # OpenAPI links: name -> (operationId, {parameter: runtime expression}),
    # e.g. {"GetJob": ("jobs.get_job", {"job_id": "$response.body#/data/id"})}.
    links: Mapping[str, tuple[str, Mapping[str, str]]] = field(default_factory=dict)


@dataclass
class Contract:
    """Everything the document says about one route."""

    successes: dict[int, Success] = field(default_factory=dict)
    codes: list[ErrorCode] = field(default_factory=list)
    body: type[BaseModel] | None = None
    # The multipart/form-data body, for a route that takes files.
    form: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    secured: bool = False
    summary: str | None = None
    # May answer 503 E_UNAVAILABLE when PostgreSQL or Redis is down.
    outage: bool = True

    def add_codes(self, codes: Iterable[ErrorCode]) -> None:
        for code in codes:
            if code not in self.codes:
                self.codes.append(code)


def contract_of(view: Callable[..., Any]) -> Contract | None:
    contract: Contract | None = getattr(view, "contract", None)
    return contract


def declare(
    view: Callable[..., Any],
    *,
    codes: Iterable[ErrorCode] = (),
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    secured: bool = False,
) -> Contract:
    """Add to ``view``'s contract (made on first use); for decorators like ``@validate``."""
    contract = contract_of(view)
    if contract is None:
        contract = Contract()
        view.contract = contract  # type: ignore[attr-defined]
    contract.add_codes(codes)
    if body is not None:
        contract.body = body
    if query is not None:
        contract.query = query
    contract.secured = contract.secured or secured
    return contract


def responds(
    status: int,
    model: type[BaseModel] | None = None,
    *,
    envelope: Envelope = "data",
    description: str | None = None,
    codes: Iterable[ErrorCode] = (),
    summary: str | None = None,
    outage: bool = True,
    links: Mapping[str, tuple[str, Mapping[str, str]]] | None = None,
) -> Callable[[F], F]:
    """Declare a success (``status`` with ``model`` in ``envelope``) and the codes it may answer.

    Stack one per success status. ``codes`` are the route's own error codes
    (a conflict, a not-found); the ones its other decorators imply are added
    by them. ``outage=False`` for a route that touches neither PostgreSQL
    nor Redis. ``links`` tell clients (and stateful fuzzers) which
    operation takes what this answer returns.
    """

    def decorator(view: F) -> F:
        contract = declare(view, codes=codes)
        contract.successes[status] = Success(
            status=status,
            model=model,
            envelope=envelope,
            description=description or _default_description(status, model),
            links=dict(links or {}),
        )
        contract.summary = summary or contract.summary
        contract.outage = contract.outage and outage
        return view

    return decorator


def _default_description(status: int, model: type[BaseModel] | None) -> str:
    if model is None:
        return "Done; no body."
    return {201: "Created.", 202: "Accepted; the work runs in the background."}.get(status, "OK.")
