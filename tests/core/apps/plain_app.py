"""An unmodified FastAPI app: what a team has before adopting otel-assist."""

from __future__ import annotations

import structlog
from fastapi import FastAPI

app = FastAPI()
log = structlog.get_logger()


@app.get("/items/{item_id}")
async def get_item(item_id: int) -> dict[str, int]:
    log.info("item loaded", event_type="request_in", user_id=7, item_id=item_id)
    return {"item_id": item_id}


@app.get("/boom")
async def boom() -> dict[str, str]:
    raise RuntimeError("kaboom")
