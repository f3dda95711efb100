"""What a user would write instead of the gateway: a minimal FastAPI + PyMongo endpoint returning the same JSON
as GET /tracking/task/{id}. Served by uvicorn exactly like the gateway (`python -m bench.reference_app`)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Response
from pymongo import AsyncMongoClient

client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
    os.environ["TRACKING_MONGODB_URI"], tz_aware=True, tzinfo=UTC, w="majority", readConcernLevel="majority"
)
tasks = client[os.environ.get("TRACKING_MONGODB_DB", "tracking")]["tasks"]
app = FastAPI()


def to_json(doc: dict[str, Any]) -> dict[str, Any]:
    out = {"id": doc.pop("_id")}
    doc.pop("nexts", None)
    doc.pop("previous", None)
    for name, value in doc.items():
        out[name] = value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if isinstance(value, datetime) else value
    return out


@app.get("/task/{task_id}")
async def get_task(task_id: int) -> Response:
    doc = await tasks.find_one({"_id": task_id})
    if doc is None:
        return Response(orjson.dumps({"code": 404, "message": "not found"}), 404, media_type="application/json")
    return Response(orjson.dumps(to_json(doc)), media_type="application/json")


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["TRACKING_PORT"]), log_level="warning", access_log=False)
