"""Beanie documents and the graph store: the only code that talks to MongoDB.

`models.documents` holds a Beanie document per collection (what it stores, its `_id`, its indexes);
`init_beanie` binds them at start-up and `migrations/` (`beanie migrate`) moves a database of an earlier layout
to this one. Reads and writes bypass Beanie's model layer: re-validating every document MongoDB returns was the
largest cost on read paths, and `models.stored_task.readable_task` is the cheap, tolerant rule the stored layout
needs instead, typed by `models.stored_task.TaskDoc`.
"""

from models import defaults
from models.check import CheckReport
from models.conditions import (
    JSON_MEDIA_TYPE,
    REPRESENTATION_SUFFIXES,
    EntityTagCondition,
    Outcome,
    Preconditions,
    Shown,
    digest_of,
    etag_of,
    etag_of_version,
    evaluate,
    shown_next_ids,
)
from models.connection import initiate_single_node_replica_set
from models.defaults import DONE_STATUSES as DEFAULT_DONE_STATUSES
from models.errors import (
    ChangeUnread,
    CommitOutcomeUnknown,
    CursorExpired,
    GraphCycle,
    GraphError,
    IdAllocationFailed,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidOperation,
    JobOutsideScope,
    OperationDeadlinePassed,
    PreconditionFailed,
    StorageUnavailable,
    SubscriberTooSlow,
    TaskAlreadyExists,
    TaskNotFound,
    TooManySubscriptions,
    TransactionsUnsupported,
    TraversalTooLarge,
)
from models.events import TaskEvent, TaskEventKind
from models.filters import task_matches
from models.graph_store import GraphStore
from models.history import TaskChange
from models.history_reads import HistoryPage
from models.history_writer import HistoryWriter
from models.jobs import JobFilter, JobPosition, JobsPage, JobStages, JobSummary, ProjectedJob
from models.limits import Limits
from models.stored_task import TaskDoc
from models.task import (
    BOOL_FIELDS,
    DATE_FIELDS,
    INT64_MAX,
    INT_FIELDS,
    NAVIGABLE_TYPES,
    RESPONSE_FIELD_ORDER,
    TaskCreate,
    TaskPatch,
    describe_invalid_fields,
    format_datetime,
    parse_datetime,
    parse_task_id,
    xml_safe,
)
from models.walks import Direction

__all__ = [
    "BOOL_FIELDS",
    "DATE_FIELDS",
    "DEFAULT_DONE_STATUSES",
    "INT64_MAX",
    "INT_FIELDS",
    "JSON_MEDIA_TYPE",
    "NAVIGABLE_TYPES",
    "REPRESENTATION_SUFFIXES",
    "RESPONSE_FIELD_ORDER",
    "ChangeUnread",
    "CheckReport",
    "CommitOutcomeUnknown",
    "CursorExpired",
    "Direction",
    "EntityTagCondition",
    "GraphCycle",
    "GraphError",
    "GraphStore",
    "HistoryPage",
    "HistoryWriter",
    "IdAllocationFailed",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyReused",
    "InvalidOperation",
    "JobFilter",
    "JobOutsideScope",
    "JobPosition",
    "JobStages",
    "JobSummary",
    "JobsPage",
    "Limits",
    "OperationDeadlinePassed",
    "Outcome",
    "PreconditionFailed",
    "Preconditions",
    "ProjectedJob",
    "Shown",
    "StorageUnavailable",
    "SubscriberTooSlow",
    "TaskAlreadyExists",
    "TaskChange",
    "TaskCreate",
    "TaskDoc",
    "TaskEvent",
    "TaskEventKind",
    "TaskNotFound",
    "TaskPatch",
    "TooManySubscriptions",
    "TransactionsUnsupported",
    "TraversalTooLarge",
    "defaults",
    "describe_invalid_fields",
    "digest_of",
    "etag_of",
    "etag_of_version",
    "evaluate",
    "format_datetime",
    "initiate_single_node_replica_set",
    "parse_datetime",
    "parse_task_id",
    "shown_next_ids",
    "task_matches",
    "xml_safe",
]
