"""Beanie documents and the graph store: the only code that talks to MongoDB."""

from models.connection import TransactionsUnsupported, initiate_single_node_replica_set
from models.errors import GraphError, InvalidOperation, StorageUnavailable, TaskAlreadyExists, TaskNotFound
from models.store import GraphStore, TaskDoc, TaskEvent, TaskEventKind
from models.task import (
    BOOL_FIELDS,
    DATE_FIELDS,
    INT_FIELDS,
    NAVIGABLE_TYPES,
    RESPONSE_FIELD_ORDER,
    TaskCreate,
    TaskPatch,
    describe_invalid_fields,
    format_datetime,
    parse_datetime,
)

__all__ = [
    "BOOL_FIELDS",
    "DATE_FIELDS",
    "INT_FIELDS",
    "NAVIGABLE_TYPES",
    "RESPONSE_FIELD_ORDER",
    "GraphError",
    "GraphStore",
    "InvalidOperation",
    "StorageUnavailable",
    "TaskAlreadyExists",
    "TaskCreate",
    "TaskDoc",
    "TaskEvent",
    "TaskEventKind",
    "TaskNotFound",
    "TaskPatch",
    "TransactionsUnsupported",
    "describe_invalid_fields",
    "format_datetime",
    "initiate_single_node_replica_set",
    "parse_datetime",
]
