"""The FastAPI peers (bench environment only): the same answer as /livez, under uvicorn.

``app`` answers from a plain ``def`` (FastAPI runs it in its thread pool, as
it runs any blocking handler, and as the issue's baseline did); ``async_app``
from an ``async def`` on the event loop, FastAPI's fastest path.
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()
async_app = FastAPI()


@app.get("/livez")
def livez() -> dict[str, str]:
    return {"status": "ok"}


@async_app.get("/livez")
async def livez_async() -> dict[str, str]:
    return {"status": "ok"}
