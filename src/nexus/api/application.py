"""The Flask classes Nexus runs: Flask, with two things it does per request changed.

- **``ensure_sync`` once per function.** Flask asks, on every request and
  for every hook and view it calls, whether the function is a coroutine
  (``inspect.iscoroutinefunction``, about 2 µs each). The answer for a
  function never changes, so it is remembered.
- **Each route's body limit.** ``request.max_content_length`` is the
  matched view's own limit when it names one
  (``nexus.api.request_context.body_limit``), else ``MAX_CONTENT_LENGTH``:
  werkzeug then enforces it on the body however it is framed, and a
  declared length beyond it is refused (413) before any hook or view runs,
  whether or not the view would have read the body. Not a ``before_request``
  hook: Flask's hook machinery cost more than the check, on every request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Request, current_app, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge


class NexusRequest(Request):
    """Flask's request, with the matched route's own body limit."""

    @property
    def max_content_length(self) -> int | None:
        if self._max_content_length is not None:
            return self._max_content_length
        rule = self.url_rule
        if rule is not None:
            view = current_app.view_functions.get(rule.endpoint)
            own: Callable[[], int] | None = getattr(view, "body_limit", None)
            if own is not None:
                return own()
        limit: int | None = current_app.config["MAX_CONTENT_LENGTH"]
        return limit

    @max_content_length.setter
    def max_content_length(self, value: int | None) -> None:
        self._max_content_length = value


class NexusFlask(Flask):
    """Flask with ``ensure_sync`` answered once per function, and :class:`NexusRequest`."""

    request_class = NexusRequest

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ensured: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return self._ensured[func]
        except KeyError:
            ensured = self._ensured[func] = super().ensure_sync(func)
            return ensured
        except TypeError:  # an unhashable callable: ask Flask each time
            return super().ensure_sync(func)

    def preprocess_request(self) -> ResponseReturnValue | None:
        """Refuse a declared body over the route's limit, then run the ``before_request`` hooks."""
        if request.environ.get("CONTENT_LENGTH"):  # most requests declare none
            length = request.content_length
            limit = request.max_content_length
            if length is not None and limit is not None and length > limit:
                raise RequestEntityTooLarge
        return super().preprocess_request()
