"""A Beanie document per collection the gateway keeps: what each stores, its `_id`, and the indexes it declares.
`init_beanie` at start-up (`models.connection.prepare_database`) binds them, `create_declared_indexes` creates
their indexes, and the `migrations/` folder (`beanie migrate`) brings a database of an earlier layout to this one.

The graph store reads and writes through the driver, on collections of its own client named by these
documents (`TaskRecord.Settings.name` and so on), never through Beanie's model layer: validating every document
MongoDB returns would be the largest cost on read paths, and the tolerant reader (models.stored_task) is the rule
readers need instead. Nor through the collection Beanie binds to the class: `init_beanie` binds each class to
one database, process-wide, while several stores (a test's stand-ins for several gateways) each keep their own
client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from beanie import Document
from bson.int64 import Int64
from pydantic import ConfigDict, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from models.stored_task import Database
from models.task import DEFAULT_TYPE


class StoredDocument(Document):
    """A document whose `_id` is of its collection's own type (each subclass declares it: an int64 task id, a
    name, a resume token) rather than Beanie's ObjectId. `Any` here so that each can narrow it: an override of
    Beanie's `PydanticObjectId | None` by another type is one mypy refuses."""

    id: Any = None


class TaskRecord(StoredDocument):
    """One stored task: `_id` is the int64 task id; links are the `nexts` and `previous` id arrays.

    The graph store writes the BSON itself (see `models.creation.new_documents`) so ids are always int64 and
    field order is stable; this class declares the collection, its indexes and the shape ops tooling can rely on.
    """

    id: int
    status: str | None = None
    creation_timestamp: datetime = Field(alias="creation-timestamp")
    update_timestamp: datetime = Field(alias="update-timestamp")
    job_id: str | None = Field(default=None, alias="job-id")
    root: bool | None = None
    type: str = DEFAULT_TYPE
    nexts: list[int] = Field(default_factory=list)
    previous: list[int] = Field(default_factory=list)

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    class Settings:
        name = "tasks"
        indexes = [  # noqa: RUF012 - Beanie reads this class attribute
            IndexModel([("job-id", ASCENDING), ("_id", ASCENDING)], name="job-id_id"),
            IndexModel([("job-id", ASCENDING), ("root", ASCENDING), ("_id", ASCENDING)], name="job-id_root_id"),
            IndexModel([("job-id", ASCENDING), ("status", ASCENDING)], name="job-id_status"),
            IndexModel([("status", ASCENDING)], name="status"),
            # Listing jobs: one key per job, newest update first (models.jobs.listing), and jobs by their tasks' status.
            IndexModel(
                [("job-id", ASCENDING), ("update-timestamp", DESCENDING)], name="job-id_update-timestamp"
            ),  # models.jobs.listing.JOBS_INDEX
            IndexModel([("status", ASCENDING), ("job-id", ASCENDING)], name="status_job-id"),
            IndexModel([("nexts", ASCENDING)], name="nexts"),
            IndexModel([("previous", ASCENDING)], name="previous"),
        ]


class TaskCounter(StoredDocument):
    """A named sequence in the `counters` collection; `tasks` holds the highest task id handed out."""

    id: str
    seq: int = 0

    class Settings:
        name = "counters"


class IdempotencyRecord(StoredDocument):
    """One idempotency key of one caller: `_id` is `{caller, key}` (the caller a SHA-256 of its issuer and name,
    never a token), `fingerprint` the SHA-256 of the create's tasks as planned, `ids` the created ids in request
    order as runs `[first, count]`, `created` the tasks' creation time, `expires` when MongoDB's TTL monitor
    removes it."""

    id: dict[str, str]
    fingerprint: str
    ids: list[list[int]] = Field(default_factory=list)
    created: datetime
    expires: datetime

    class Settings:
        name = "idempotency_keys"
        indexes = [  # noqa: RUF012 - Beanie reads this class attribute
            # The record's own `expires` time, so TRACKING_IDEMPOTENCY_HOURS changes no index.
            IndexModel([("expires", ASCENDING)], name="expires_ttl", expireAfterSeconds=0),
        ]


class HistoryEntry(StoredDocument):
    """One recorded change of a task (models.history): `_id` is the change's resume token (or `gap-<time>` for
    a GAP), `task` the task id (None for a GAP), `job`, `kind` (CREATED, UPDATED, DELETED, SKIPPED, GAP),
    `fields` the changed API fields, `at` when MongoDB recorded it, `status` when it set one, `reason` why a
    SKIPPED change is not recorded. The TTL index on `at` is not declared here: its expiry is a setting
    (TRACKING_HISTORY_DAYS), installed and changed in place by models.history.prepare_history."""

    id: str
    task: Int64 | None = None
    job: str | None = None
    kind: str
    fields: list[str] = Field(default_factory=list)
    at: datetime
    status: str | None = None
    reason: str | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="allow")

    class Settings:
        name = "task_history"
        indexes = [  # noqa: RUF012 - Beanie reads this class attribute
            # A task's changes in order (resume tokens sort in the order of the changes), and many tasks' at once.
            IndexModel([("task", ASCENDING), ("_id", ASCENDING)], name="task_id"),
        ]


class Lease(StoredDocument):
    """A lease only one gateway holds at a time: `_id` "writer" (the history writer, models.history_writer,
    which also keeps `resumeToken`, how far the history goes) or "retention" (the background purge,
    models.retention, which also keeps `lastRun`); `owner` the holder, `expires` when another may take it."""

    id: str
    owner: str
    expires: datetime

    model_config = ConfigDict(extra="allow")

    class Settings:
        name = "task_history_lease"


class NamedToken(StoredDocument):
    """One named token: `_id` its name, `hash` the SHA-256 (hex) of its secret, `access` "read" or "write",
    `jobs` the job-id prefixes it is limited to (null: every job), `rate` its requests per second (null: the
    default), `created`, `expires` (null: never) and `last_used` (written at most once per
    TRACKING_TOKEN_LAST_USED_S by each gateway)."""

    id: str
    hash: str
    access: str
    jobs: list[str] | None = None
    rate: float | None = None
    created: datetime
    expires: datetime | None = None
    last_used: datetime | None = None

    class Settings:
        name = "tokens"
        indexes = [  # noqa: RUF012 - Beanie reads this class attribute
            IndexModel([("hash", ASCENDING)], name="hash_unique", unique=True),
        ]


DOCUMENTS: list[type[Document]] = [TaskRecord, TaskCounter, HistoryEntry, Lease, IdempotencyRecord, NamedToken]
"""Every collection the gateway keeps in its database, as the documents `init_beanie` is given."""
COLLECTIONS = (
    TaskRecord.Settings.name,
    TaskCounter.Settings.name,
    HistoryEntry.Settings.name,
    Lease.Settings.name,
    IdempotencyRecord.Settings.name,
    NamedToken.Settings.name,
)
"""Their names: tasks, counters (and link locks), the history and its leases, creates' idempotency keys, the
named tokens."""


async def create_declared_indexes(database: Database) -> None:
    """The indexes each document declares, created with the driver, each only if missing (several gateways may
    start at once). Not by `init_beanie`: Beanie 2.2 tells indexes apart by their sorted field names
    (`beanie.odm.fields.IndexModelField`), so `job-id_status` and `status_job-id`, the same fields in the other
    order, collapse into one and the other is never created (tests/models/test_migrations.py shows it)."""
    for document in (TaskRecord, HistoryEntry, IdempotencyRecord, NamedToken):
        await database.get_collection(document.Settings.name).create_indexes(document.Settings.indexes)
