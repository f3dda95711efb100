"""XML as legacy Java callers send and read it, through HTTP on the real MongoDB: character data kept exactly
(what a caller GETs and PUTs back is what was stored), JAXB's xsi:type, attribute floods refused while expat
parses and freed at once, and `root` read as its error message says."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from xml.sax.saxutils import escape

import httpx
import pytest
import xmltodict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.backend import Backend
from gateway.settings import load_settings
from models import BOOL_FIELDS, DATE_FIELDS, INT_FIELDS, RESPONSE_FIELD_ORDER, GraphStore
from tests.conftest import TEST_DB
from tests.helpers import AUTH, TOKEN, gateway_app, lifespan_client, served

pytestmark = pytest.mark.hostile  # an attack on what it tests (pyproject.toml, markers)

XML_IN = {"Content-Type": "application/xml"}
XML_BOTH = {**XML_IN, "Accept": "application/xml"}
TEXT_FIELDS = [
    name
    for name in RESPONSE_FIELD_ORDER
    if name not in {"id", "nexts", "previous", "type"} | INT_FIELDS | BOOL_FIELDS | DATE_FIELDS
]
"""Every string field but `type` (a navigable type changes the answer's shape; it is a string like the rest)."""

XML_CHARACTERS = st.one_of(
    st.sampled_from(" \t\r\n"),  # white space and line ends, the characters XML handling tends to lose
    st.characters(
        codec="utf-8",  # no lone surrogates: no UTF-8 store carries them
        exclude_characters="".join(map(chr, [*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF])),
    ),
)
"""XML 1.0 §2.2 Char: what any XML document may carry (the gateway refuses the rest on input)."""


def xml_text(value: str) -> str:
    """`value` as element content any conforming parser reads back exactly: a CR as a character reference
    (XML 1.0 §2.11 turns a literal CR into LF)."""
    return escape(value).replace("\r", "&#13;")


def xml_create(fields: dict[str, str]) -> bytes:
    inner = "".join(f"<{name}>{xml_text(value)}</{name}>" for name, value in fields.items())
    return f"<tasks><task>{inner}</task></tasks>".encode()


def read_xml(content: bytes) -> dict:
    """An XML answer as a conforming parser gives it, character data untouched."""
    return xmltodict.parse(content, strip_whitespace=False)


async def created_id(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    ((task,),) = [response.json()["tasks"]]
    return int(task["id"])


# ---- character data ------------------------------------------------------------------------------------------------


async def test_padding_and_white_space_only_values_are_kept(client):
    body = (
        b"<tasks>\n  <task>\n    <name>  padded  </name>\n    <status>   </status>\n"
        b"    <description><![CDATA[ cdata with trailing spaces   ]]></description>\n"
        b"    <lock>\ttab\n</lock>\n    <number-of-retries> 3 </number-of-retries>\n"
        b"    <root>\n true </root>\n  </task>\n</tasks>\n"
    )
    response = await client.post("/tracking/task", content=body, headers=XML_IN)
    task = (await client.get(f"/tracking/task/{await created_id(response)}")).json()
    assert task["name"] == "  padded  "
    assert task["status"] == "   "
    assert task["description"] == " cdata with trailing spaces   "
    assert task["lock"] == "\ttab\n"
    assert (task["number-of-retries"], task["root"]) == (3, True)  # xs:int, xs:boolean: around white space


async def test_json_and_xml_store_the_same_characters(client):
    value = "  a\tb \n"
    by_json = await created_id(await client.post("/tracking/task", json={"tasks": [{"name": value}]}))
    by_xml = await created_id(await client.post("/tracking/task", content=xml_create({"name": value}), headers=XML_IN))
    for task_id in (by_json, by_xml):
        assert (await client.get(f"/tracking/task/{task_id}")).json()["name"] == value


async def test_line_ends_follow_xml_and_a_cr_survives_as_a_reference(client):
    """XML 1.0 §2.11: a parser reads a literal CR LF (or CR) as LF; `&#13;` is a CR. Answers write a CR as `&#13;`
    so that any conforming parser reads it back."""
    body = b"<tasks><task><name>a\r\nb\rc</name><lock>x&#13;\ny</lock></task></tasks>"
    task_id = await created_id(await client.post("/tracking/task", content=body, headers=XML_IN))
    task = (await client.get(f"/tracking/task/{task_id}")).json()
    assert (task["name"], task["lock"]) == ("a\nb\nc", "x\r\ny")
    answer = await client.get(f"/tracking/task/{task_id}", headers={"Accept": "application/xml"})
    assert b"x&#13;\ny" in answer.content
    assert read_xml(answer.content)["task"]["lock"] == "x\r\ny"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(fields=st.fixed_dictionaries({name: st.text(XML_CHARACTERS, max_size=12) for name in TEXT_FIELDS}))
async def test_every_string_round_trips_through_json_and_xml(client, fields):
    by_json = await created_id(await client.post("/tracking/task", json={"tasks": [fields]}))
    by_xml = await created_id(await client.post("/tracking/task", content=xml_create(fields), headers=XML_IN))
    for task_id in (by_json, by_xml):
        stored = (await client.get(f"/tracking/task/{task_id}")).json()
        assert {name: stored.get(name) for name in fields} == fields
        answer = await client.get(f"/tracking/task/{task_id}", headers={"Accept": "application/xml"})
        read = read_xml(answer.content)["task"]
        assert {name: read.get(name) or "" for name in fields} == fields  # <x></x> is an empty string
        # A caller that GETs the task as XML and PUTs it back changes nothing.
        put = await client.put(f"/tracking/task/{task_id}", content=answer.content, headers=XML_IN)
        assert put.status_code == 200, put.text
        again = (await client.get(f"/tracking/task/{task_id}")).json()
        assert {name: again.get(name) for name in fields} == fields


# ---- attributes ---------------------------------------------------------------------------------------------------


async def test_jaxb_xsi_type_on_a_task_is_ignored(client):
    body = (
        b'<ns2:tasks xmlns:ns2="http://nfvd/tracking" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        b'<ns2:task xsi:type="ns2:executionTask"><type>execution-task</type><name>n</name></ns2:task>'
        b"</ns2:tasks>"
    )
    task_id = await created_id(await client.post("/tracking/task", content=body, headers=XML_IN))
    task = (await client.get(f"/tracking/task/{task_id}")).json()
    assert (task["type"], task["name"]) == ("execution-task", "n")
    update = b'<task xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="t"><name>m</name></task>'
    assert (await client.put(f"/tracking/task/{task_id}", content=update, headers=XML_IN)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b'<tasks><task color="red"><name>n</name></task></tasks>',
        b'<tasks><task><name xmlns:xsi="urn:xsi" xsi:type="s">n</name></task></tasks>',
        b'<tasks><task type="t"><name>n</name></task></tasks>',
    ],
    ids=["other attribute", "xsi:type on a field", "unprefixed type"],
)
async def test_other_attributes_are_still_refused(client, raw_db, body):
    response = await client.post("/tracking/task", content=body, headers=XML_IN)
    assert response.status_code == 400, response.text
    assert "attribute" in response.json()["message"]
    assert await raw_db.tasks.count_documents({}) == 0


def attribute_flood(count: int) -> bytes:
    return b"<tasks><task " + b" ".join(b'a%d="x"' % i for i in range(count)) + b"/></tasks>"


async def test_a_million_attributes_are_refused_at_once_naming_the_setting(client, raw_db):
    body = attribute_flood(1_000_000)  # 11.9 MB: expat alone would take over a second to read the tag
    # The CPU time of this thread (the app runs in it) outside the garbage collector's collections: not wall time,
    # which a loaded machine stretches, nor other threads' time or a full collection of the whole test process
    # that happens to fall in the request (either took a second on a loaded machine).
    collecting = [0.0, 0.0]  # the collections' CPU time, the current one's start
    this_thread = threading.get_ident()

    def timed(phase: str, info: dict[str, int]) -> None:
        if threading.get_ident() != this_thread:
            return
        if phase == "start":
            collecting[1] = time.thread_time()
        else:
            collecting[0] += time.thread_time() - collecting[1]

    gc.callbacks.append(timed)
    try:
        started = time.thread_time()
        response = await client.post("/tracking/task", content=body, headers=XML_IN)
        spent = time.thread_time() - started - collecting[0]
    finally:
        gc.callbacks.remove(timed)
    assert response.status_code == 400, response.text
    assert "TRACKING_XML_MAX_ATTRIBUTES" in response.json()["message"]
    assert spent < 0.5, f"refused after {spent:.2f}s of CPU"
    assert await raw_db.tasks.count_documents({}) == 0


async def test_attributes_per_element_are_bounded_by_the_setting(mongo_uri, store, tmp_path):
    settings = load_settings(api_tokens=TOKEN, data_dir=tmp_path, xml_max_attributes=3)
    assert settings.limits.max_xml_attributes == 3  # TRACKING_XML_MAX_ATTRIBUTES reaches the request limits
    limited = await GraphStore.open(mongo_uri, TEST_DB, limits=settings.limits)
    async with lifespan_client(create_app(settings, Backend(store=limited)), AUTH) as http:
        namespaces = b' xmlns="urn:a" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:b="urn:b"'
        ok = await http.post("/tracking/task", content=b"<tasks" + namespaces + b"><task/></tasks>", headers=XML_IN)
        assert ok.status_code == 200, ok.text
        refused = await http.post(
            "/tracking/task", content=b"<tasks" + namespaces + b' xmlns:c="urn:c"><task/></tasks>', headers=XML_IN
        )
        assert refused.status_code == 400
        assert "<tasks> has 4 attributes" in refused.json()["message"]
        assert "at most 3 attributes (TRACKING_XML_MAX_ATTRIBUTES)" in refused.json()["message"]
    await limited.close()


def live_sax_handlers() -> int:
    return sum(type(item).__name__ == "_DictSAXHandler" for item in gc.get_objects())


async def test_a_refused_body_is_freed_without_a_garbage_collection(client):
    """What the parser built for a refused body goes with the request: no reference cycle keeps it (with 13 such
    bodies, a cycle once held 3 GB until a full collection)."""
    gc.collect()
    gc.disable()
    try:
        before = live_sax_handlers()
        for count in (100, 2000) * 10:
            response = await client.post("/tracking/task", content=attribute_flood(count), headers=XML_IN)
            assert response.status_code == 400
        assert live_sax_handlers() == before
    finally:
        gc.enable()


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


async def test_twenty_floods_leave_memory_bounded(client):
    body = attribute_flood(1_000_000)
    for _ in range(3):  # allocator warm-up
        await client.post("/tracking/task", content=body, headers=XML_IN)
    before = resident_bytes()
    for _ in range(20):
        assert (await client.post("/tracking/task", content=body, headers=XML_IN)).status_code == 400
    grown = resident_bytes() - before
    assert grown < 100 * 1024 * 1024, f"resident memory grew by {grown / 1e6:.0f} MB"


async def test_health_answers_while_a_big_xml_body_is_parsed(store, tmp_path):
    """XML bodies over 64 KiB are parsed in a worker thread: the event loop goes on serving meanwhile."""
    app, settings = gateway_app(store, tmp_path)
    body = b"<tasks><task>" + b"<x>1</x>" * 600_000 + b"</task></tasks>"  # 4.8 MB, about 1.5 s to parse
    async with (
        served(app, settings) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=60) as http,
    ):
        started = time.monotonic()
        posting = asyncio.create_task(http.post("/tracking/task", content=body, headers=XML_IN))
        latencies = []
        while not posting.done():
            asked = time.monotonic()
            assert (await http.get("/healthz")).status_code == 200
            latencies.append(time.monotonic() - asked)
            await asyncio.sleep(0.02)
        response = await posting
        assert response.status_code == 400 and "appears more than once" in response.json()["message"]
    assert time.monotonic() - started > 0.5, "the body parsed too fast to tell"
    assert len(latencies) >= 5 and max(latencies) < 0.5, latencies


# ---- root ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["yes", "1", "on", "True", "t"])
async def test_root_takes_exactly_what_its_error_names(client, value):
    response = await client.get(f"/tracking/job-1/task/roots?root={value}")
    assert response.status_code == 400
    assert response.json()["message"] == "root: must be true or false"


async def test_root_true_and_false(client):
    await client.post("/tracking/task", json={"tasks": [{"job-id": "j", "root": True}, {"job-id": "j", "root": False}]})
    everything = (await client.get("/tracking/j/task/roots?root=true")).json()["tasks"]
    non_roots = (await client.get("/tracking/j/task/roots?root=false")).json()["tasks"]
    assert (len(everything), len(non_roots)) == (2, 1)
