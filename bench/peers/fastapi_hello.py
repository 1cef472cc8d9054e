"""The FastAPI peer (bench environment only): the same answer as /livez, under uvicorn."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/livez")
async def livez() -> dict[str, str]:
    return {"status": "ok"}
