"""A catch-all SMTP server for development and tests: it accepts every message and keeps it.

``make dev`` runs one on loopback (unless ``NEXUS_SMTP_HOST`` points at a
server of your own) and ``make mail`` lists what it caught; the tests start
one per session. It is aiosmtpd — a real SMTP server on a real socket — so
the app's mail code is exercised exactly as against a relay.

    python -m nexus_dev.mailcatcher serve --port 1025 --dir data/dev/mail
    python -m nexus_dev.mailcatcher list --dir data/dev/mail
    python -m nexus_dev.mailcatcher show N --dir data/dev/mail
"""

from __future__ import annotations

import argparse
import email
import email.policy
import signal
import sys
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Catcher:
    """aiosmtpd's handler: every message, parsed, in order; also as .eml files in ``directory``."""

    directory: Path | None = None
    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        raw: bytes = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)  # noqa: S101 - the default policy's class
        with self.arrived:
            self.messages.append(message)
            if self.directory is not None:
                self.directory.mkdir(parents=True, exist_ok=True)
                (self.directory / f"{len(self.messages):05d}.eml").write_bytes(raw)
            self.arrived.notify_all()
        return "250 Message accepted"

    def wait(self, count: int, timeout: float) -> list[EmailMessage]:
        """The messages once there are at least ``count`` (or all there are after ``timeout``)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            return list(self.messages)

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()


def start(host: str, port: int, directory: Path | None = None) -> tuple[Controller, Catcher]:
    """A catch-all server listening now on ``host:port``; ``controller.stop()`` ends it."""
    catcher = Catcher(directory)
    controller = Controller(catcher, hostname=host, port=port)
    controller.start()
    return controller, catcher


def _messages(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.eml")) if directory.is_dir() else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nexus_dev.mailcatcher")
    parser.add_argument("command", choices=["serve", "list", "show"])
    parser.add_argument("number", nargs="?", type=int, help="show: which message (1 is oldest)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path("data/dev/mail"))
    args = parser.parse_args(argv)
    if args.command == "serve":
        controller, _ = start(args.host, args.port, args.dir)
        sys.stdout.write(f"catching mail on {args.host}:{args.port}, kept in {args.dir}\n")
        sys.stdout.flush()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        controller.stop()
        return 0
    messages = _messages(args.dir)
    if args.command == "list":
        for number, path in enumerate(messages, start=1):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            sys.stdout.write(
                f"{number:4d}  {message['Date']}  {message['To']}  {message['Subject']}\n"
            )
        if not messages:
            sys.stdout.write(f"no mail in {args.dir}\n")
        return 0
    if args.number is None or not 1 <= args.number <= len(messages):
        sys.stderr.write(f"show N: N from 1 to {len(messages)}\n")
        return 2
    message = email.message_from_bytes(
        messages[args.number - 1].read_bytes(), policy=email.policy.default
    )
    assert isinstance(message, EmailMessage)  # noqa: S101
    text = message.get_body(preferencelist=("plain",))
    sys.stdout.write(
        f"From: {message['From']}\nTo: {message['To']}\nSubject: {message['Subject']}\n\n"
    )
    sys.stdout.write(text.get_content() if text is not None else "(no text part)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
