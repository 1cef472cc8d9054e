"""A corpus of hostile requests, sent as raw bytes: the app answers each with a 4xx problem.

Every response that comes from the app (it carries ``X-Request-ID``) must be a
4xx ``application/problem+json``; gunicorn refuses some requests before the
app sees them (its own 400/414/431 pages) and those are listed apart. No 5xx
from anyone, and ``/healthz`` stays 200.
"""

from __future__ import annotations

import base64
import json
import re
import socket

from tests.reliability.conftest import ADMIN, Stack, report

JSON = b"Content-Type: application/json\r\n"
CHUNKED = JSON + b"Transfer-Encoding: chunked\r\n"
LOGIN = "/api/v1/auth/login"


def _request(
    method: str, path: str, body: bytes = b"", headers: bytes = JSON, length: int | None = None
) -> bytes:
    """Raw HTTP/1.1; ``length`` overrides Content-Length (-1: send none, as for chunked)."""
    declared = len(body) if length is None else length
    framing = f"Content-Length: {declared}\r\n".encode() if declared >= 0 else b""
    if method == "GET" and not body and length is None:
        framing = b""
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n".encode() + headers + framing + b"\r\n" + body


def _chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def _token(claims: dict[str, object]) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{'A' * 43}"


def corpus() -> dict[str, bytes]:
    big = 1_048_576
    cases: dict[str, bytes] = {
        "deep nesting": _request("POST", LOGIN, b"[" * 50_000 + b"]" * 50_000),
        "deep object": _request("POST", LOGIN, b'{"a":' * 20_000 + b"1" + b"}" * 20_000),
        "huge integer": _request("POST", LOGIN, b'{"email": ' + b"9" * 20_000 + b"}"),
        "huge float": _request("POST", LOGIN, b'{"email": 1e999999}'),
        "invalid utf-8": _request("POST", LOGIN, b'{"email": "\xff\xfe", "password": "x"}'),
        "nul in body": _request("POST", LOGIN, b'{"email": "a\\u0000@b.com", "password": "x"}'),
        "raw nul in body": _request("POST", LOGIN, b'{"email": "a\x00@b.com", "password": "x"}'),
        "duplicate keys": _request("POST", LOGIN, b'{"email": "a@b.c", "email": 1, "password": 2}'),
        "not json": _request("POST", LOGIN, b"email=a&password=b"),
        "json array": _request("POST", LOGIN, b"[1, 2, 3]"),
        "json null": _request("POST", LOGIN, b"null"),
        "wrong content type": _request("POST", LOGIN, b"{}", b"Content-Type: text/plain\r\n"),
        "no content type": _request("POST", LOGIN, b"{}", b""),
        "empty body": _request("POST", LOGIN, b""),
        "oversized declared": _request("POST", LOGIN, b"{}", length=big * 4),
        "oversized chunked": _request(
            "POST", LOGIN, _chunked(b'{"email": "a@b.c"}' + b" " * (big + 10)), CHUNKED, -1
        ),
        "bad chunk size": _request("POST", LOGIN, b"ZZZ\r\n{}\r\n0\r\n\r\n", CHUNKED, -1),
        "truncated body": _request("POST", LOGIN, b'{"email": "a@b.c"}', length=40),
        "sql-looking id": _request("GET", "/api/v1/jobs/1'%20OR%20'1'='1"),
        "traversal id": _request("GET", "/api/v1/jobs/..%2F..%2Fetc%2Fpasswd"),
        "traversal path": _request("GET", "/api/v1/../../etc/passwd"),
        "nul in query": _request("GET", "/api/v1/problems?cursor=%00"),
        "huge limit": _request("GET", "/api/v1/problems?limit=99999999999999999999"),
        "negative limit": _request("GET", "/api/v1/problems?limit=-1"),
        "forged cursor": _request("GET", "/api/v1/problems?cursor=eyJzIjoiIn0.AAAA"),
        "unknown query key": _request("GET", "/api/v1/problems?evil=1"),
        "odd method": _request("PROPFIND", "/api/v1/auth/me"),
        "trace": _request("TRACE", "/healthz"),
        "long path": _request("GET", "/" + "a" * 9000),
        "huge header": _request("GET", "/healthz", headers=b"X-Big: " + b"a" * 20_000 + b"\r\n"),
        "many headers": _request(
            "GET", "/healthz", headers=b"".join(f"X-H{n}: v\r\n".encode() for n in range(200))
        ),
        "header with nul": _request("GET", "/api/v1/auth/me", headers=b"User-Agent: a\x00b\r\n"),
        "bad header name": _request("GET", "/healthz", headers=b"Bad Header: x\r\n"),
        "no bearer": _request("GET", "/api/v1/auth/me", headers=b"Authorization: Basic eDp5\r\n"),
        "empty bearer": _request("GET", "/api/v1/auth/me", headers=b"Authorization: Bearer \r\n"),
        "garbage bearer": _request(
            "GET", "/api/v1/auth/me", headers=b"Authorization: Bearer \xff\xfe.\x00.x\r\n"
        ),
        "alg none": _request(
            "GET",
            "/api/v1/auth/me",
            headers=b"Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.\r\n",
        ),
        "forged token": _request(
            "GET",
            "/api/v1/auth/me",
            headers=f"Authorization: Bearer {_token({'sub': '1', 'type': 'access'})}\r\n".encode(),
        ),
        "admin route unauthenticated": _request("GET", "/api/v1/admin/users"),
        "bad uuid": _request("GET", "/api/v1/jobs/not-a-uuid"),
    }
    return cases


def _send(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may stop reading early (an oversized body): read its answer
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return data


def test_every_hostile_request_gets_a_4xx_problem_and_health_holds(stack: Stack) -> None:
    from_app: dict[str, int] = {}
    from_gunicorn: dict[str, int] = {}
    failures: list[str] = []
    for name, raw in corpus().items():
        answer = _send(stack.port, raw)
        head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        match = re.match(r"HTTP/1\.[01] (\d{3})", head)
        if match is None:
            failures.append(f"{name}: no HTTP answer ({answer[:80]!r})")
            continue
        status = int(match.group(1))
        if "x-request-id:" in head.lower():
            from_app[name] = status
            if not 400 <= status < 500 or "application/problem+json" not in head:
                failures.append(f"{name}: {head.splitlines()[0]} ({head!r})")
        else:
            from_gunicorn[name] = status
            if status >= 500:
                failures.append(f"{name}: gunicorn {status}")
    assert stack.healthy()
    report(
        "hostile",
        {
            "requests": len(from_app) + len(from_gunicorn),
            "app": from_app,
            "gunicorn": from_gunicorn,
        },
    )
    assert failures == []
    assert len(from_app) > len(from_gunicorn)  # most reach the app, and are answered by it
    # Not hostile, but odd: OPTIONS is answered with Allow, as HTTP says.
    options = _send(stack.port, _request("OPTIONS", "/api/v1/auth/login"))
    assert options.startswith(b"HTTP/1.1 200 ")
    allow = re.search(rb"Allow: ([A-Z, ]+)\r\n", options)
    assert allow is not None
    assert set(allow.group(1).decode().split(", ")) == {"POST", "OPTIONS"}
    assert "http.unhandled_exception" not in stack.log("web")


def _multipart(
    content: bytes, filename: bytes = b"a.txt", boundary: bytes = b"xYzZy"
) -> tuple[bytes, bytes]:
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )
    return body, b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"


def test_hostile_uploads_get_4xx_problems_and_a_good_one_through_gunicorn_is_accepted(
    stack: Stack,
) -> None:
    token = stack.login(*ADMIN)["access_token"]
    auth = f"Authorization: Bearer {token}\r\n".encode()
    libraries = stack.request("GET", "/api/v1/libraries", token=token).json()["data"]
    path = f"/api/v1/libraries/{libraries[0]['id']}/media"
    limit = 10 * 1024 * 1024
    over, over_type = _multipart(b"x" * (limit + 10))
    two_mib, two_mib_type = _multipart(b"word " * (2 * 1024 * 1024 // 5), b"two.txt")
    cases: dict[str, tuple[bytes, int]] = {
        "upload over the limit, declared": (
            _request("POST", path, over, auth + over_type), 413,
        ),
        "upload over the limit, chunked": (
            _request(
                "POST", path, _chunked(over), auth + over_type + b"Transfer-Encoding: chunked\r\n",
                -1,
            ),
            413,
        ),
        "json over the limit, chunked": (
            _request(
                "POST", path,
                _chunked(b'{"title": "x", "text": "' + b"y" * (limit + 10) + b'"}'),
                auth + CHUNKED, -1,
            ),
            413,
        ),
        "broken boundary": (
            _request("POST", path, _multipart(b"x")[0], auth + _multipart(b"", boundary=b"o")[1]),
            400,
        ),
        "no boundary": (
            _request("POST", path, b"--a\r\n", auth + b"Content-Type: multipart/form-data\r\n"),
            400,
        ),
        "cut-off part": (_request("POST", path, _multipart(b"x")[0][:-20], auth + over_type), 400),
        "nul in a file name": (
            _request("POST", path, *_swap(_multipart(b"x", b"a\x00b.exe"), auth)), 415,
        ),
        "file of another type": (
            _request("POST", path, *_swap(_multipart(b"MZ", b"setup.exe"), auth)), 415,
        ),
        "nul in a title": (
            _request("POST", path, b'{"title": "a\\u0000", "text": "x"}', auth + JSON), 400,
        ),
        "bad chunk size": (
            _request("POST", path, b"ZZZ\r\n{}\r\n0\r\n\r\n", auth + CHUNKED, -1), 400,
        ),
        "over the app-wide limit, under the upload limit": (
            _request("POST", path, two_mib, auth + two_mib_type), 202,
        ),
    }  # fmt: skip
    answers: dict[str, int] = {}
    for name, (raw, expected) in cases.items():
        answer = _send(stack.port, raw)
        head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        match = re.match(r"HTTP/1\.[01] (\d{3})", head)
        assert match is not None, (name, answer[:200])
        answers[name] = int(match.group(1))
        assert answers[name] == expected, (name, head, answer[-400:])
        if expected >= 400:
            assert "application/problem+json" in head, (name, head)
    report("hostile_uploads", answers)
    assert stack.healthy()
    assert "http.unhandled_exception" not in stack.log("web")


def _swap(multipart: tuple[bytes, bytes], auth: bytes) -> tuple[bytes, bytes]:
    body, content_type = multipart
    return body, auth + content_type
