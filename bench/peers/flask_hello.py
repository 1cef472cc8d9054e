"""The plain-Flask peer: the smallest Flask app answering what /livez answers."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/livez")
def livez() -> dict[str, str]:
    return {"status": "ok"}
