"""`tracking-gateway token create|list|revoke` while two gateway processes serve the same database: a token
created is accepted by both, revoked or expired is refused by both, without a restart; `list` shows what a token
allows and when it was last used, never a secret; the secret is found nowhere in MongoDB or the logs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo import AsyncMongoClient

from gateway.embedded import free_port
from tests.helpers import TOKEN, eventually

DB = "token_cli"
DONE = {"query": "{ doneStatuses }"}


def environment(mongo_uri: str, data_dir: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKING_")}
    return env | {
        "TRACKING_MONGODB_URI": mongo_uri,
        "TRACKING_MONGODB_DB": DB,
        "TRACKING_API_TOKENS": TOKEN,
        "TRACKING_DATA_DIR": str(data_dir),
        **values,
    }


def cli(mongo_uri: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "token", *args],
        env=environment(mongo_uri, data_dir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(autouse=True)
async def no_tokens(mongo_uri: str) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo_uri)
    try:
        await client[DB].tokens.delete_many({})
    finally:
        await client.close()


@pytest.fixture
def gateways(mongo_uri: str, tmp_path: Path) -> Iterator[list[tuple[int, Path]]]:
    """Two gateway processes on DB, each logging to a file of its own; yields their ports and log files."""
    running = []
    for number in (1, 2):
        port, log = free_port(), tmp_path / f"gateway-{number}.log"
        env = environment(mongo_uri, tmp_path, TRACKING_PORT=str(port), TRACKING_TOKEN_LAST_USED_S="1")
        with log.open("wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, stdout=out, stderr=out)
        running.append((process, port, log))
    try:
        yield [(port, log) for _, port, log in running]
    finally:
        for process, _, _ in running:
            process.terminate()
        for process, _, _ in running:
            process.wait(timeout=60)


async def status(port: int, token: str, method: str = "POST") -> int:
    async with httpx.AsyncClient(timeout=30) as http:
        try:
            if method == "POST":
                answer = await http.post(f"http://127.0.0.1:{port}/graphql", json=DONE, headers={"X-Auth-Token": token})
            else:
                body = {"tasks": [{"job-id": "cli", "name": "x"}]}
                answer = await http.post(
                    f"http://127.0.0.1:{port}/tracking/task", json=body, headers={"X-Auth-Token": token}
                )
        except httpx.TransportError:
            return 0
    return answer.status_code


async def on_both(ports: list[int], token: str, expected: int, what: str) -> None:
    async def answers() -> bool:
        return [await status(port, token) for port in ports] == [expected] * len(ports)

    await eventually(answers, timeout=90, what=f"{what} on both gateways")


def created_secret(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    secret = lines[-1]
    assert secret == secret.strip() and " " not in secret and len(secret) >= 43  # alone on the last line
    return secret


@pytest.mark.slow
async def test_tokens_created_revoked_and_expired_while_two_gateways_serve(mongo_uri, tmp_path, gateways):
    ports = [port for port, _ in gateways]
    await on_both(ports, TOKEN, 200, "the environment's token")
    ci = created_secret(
        cli(mongo_uri, tmp_path, "create", "ci", "--jobs", "ci-", "--jobs", "nightly-", "--rate", "50/s")
    )
    viewer = created_secret(cli(mongo_uri, tmp_path, "create", "viewer", "--read-only"))
    brief = created_secret(cli(mongo_uri, tmp_path, "create", "brief", "--expires-in", "20s"))
    await on_both(ports, ci, 200, "the new token accepted")
    await on_both(ports, viewer, 200, "the new read-only token accepted")
    assert await status(ports[0], viewer, "REST") == 403  # read-only

    async def last_used_listed() -> bool:
        listed = cli(mongo_uri, tmp_path, "list")
        row = next(line for line in listed.stdout.splitlines() if line.startswith("ci "))
        return row.split()[-1] != "-"

    await eventually(last_used_listed, timeout=90, what="ci's last use listed")
    listed = cli(mongo_uri, tmp_path, "list").stdout.splitlines()
    assert listed[0].split() == ["NAME", "ACCESS", "JOBS", "CREATED", "EXPIRES", "LAST", "USED"]
    rows = {line.split()[0]: line.split() for line in listed[1:]}
    assert rows["ci"][1:4] == ["write", "50/s", "ci-,nightly-"]
    assert rows["viewer"][1:3] == ["read", "*"] and rows["brief"][4] != "-"

    assert cli(mongo_uri, tmp_path, "revoke", "ci").returncode == 0
    await on_both(ports, ci, 403, "the revoked token refused")
    await on_both(ports, brief, 403, "the expired token refused")
    await on_both(ports, viewer, 200, "the other token still accepted")
    assert "ci " not in cli(mongo_uri, tmp_path, "list").stdout

    client: AsyncMongoClient = AsyncMongoClient(mongo_uri)
    try:
        database = client[DB]
        stored = [repr(doc) for name in await database.list_collection_names() async for doc in database[name].find()]
    finally:
        await client.close()
    for secret in (ci, viewer, brief):
        assert not any(secret in text for text in stored)
        assert not any(secret in log.read_text(errors="replace") for _, log in gateways)
        assert secret not in " ".join(cli(mongo_uri, tmp_path, "list").stdout.split())


@pytest.mark.slow
def test_refusals_name_what_is_wrong_and_change_nothing(mongo_uri, tmp_path):
    taken = cli(mongo_uri, tmp_path, "create", "twice")
    assert taken.returncode == 0
    again = cli(mongo_uri, tmp_path, "create", "twice")
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.strip() == "tracking-gateway: a token named 'twice' exists already: revoke it first"
    reserved = cli(mongo_uri, tmp_path, "create", "env-api-1")
    assert reserved.returncode == 1 and "environment's" in reserved.stderr
    for option, value in (("--expires-in", "5x"), ("--expires-in", "0d"), ("--rate", "fast"), ("--rate", "0/s")):
        refused = cli(mongo_uri, tmp_path, "create", "other", option, value)
        assert refused.returncode == 2 and option in refused.stderr and refused.stdout == ""
    unknown = cli(mongo_uri, tmp_path, "revoke", "nobody")
    assert unknown.returncode == 1 and "no token named 'nobody'" in unknown.stderr
    names = [line.split()[0] for line in cli(mongo_uri, tmp_path, "list").stdout.splitlines()[1:]]
    assert names == ["twice"]
    assert cli(mongo_uri, tmp_path, "revoke", "twice").returncode == 0
