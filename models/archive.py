"""The archive of a job (`tracking-gateway archive`, `restore`, `purge --archive-dir`) as a file, and the reports of
restores and purges.

Format (JSON Lines, gzip-compressed when the file name ends in `.gz`): every line one JSON object in MongoDB
Extended JSON v2, canonical mode (`bson.json_util`, CANONICAL_JSON_OPTIONS), so every BSON type, int64 ids and
links, dates (beyond year 9999 too) round-trip exactly. The first line is the header, plain JSON:
`{"format": "tracking-gateway-job-archive", "version": 1, "job": <job id or null>, "tasks": n, "history": m,
"archivedAt": "<ISO 8601>"}`; then one `{"task": <document>}` line per task (by id), then one
`{"history": <entry>}` line per `task_history` entry of those tasks (by `_id`, which orders them in time).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from bson import json_util

from models.connection import DATETIME_CONVERSION
from models.errors import InvalidOperation
from models.stored_task import TaskDoc
from models.task import now_utc

ARCHIVE_FORMAT = "tracking-gateway-job-archive"
ARCHIVE_VERSION = 1
JSON_OPTIONS = json_util.CANONICAL_JSON_OPTIONS.with_options(
    tz_aware=True, tzinfo=UTC, datetime_conversion=DATETIME_CONVERSION
)
"""Canonical Extended JSON, read back as the gateway reads MongoDB (a date beyond year 9999 is a DatetimeMS)."""
_GZIP_MAGIC = b"\x1f\x8b"
NOTED_LINKS = 20


# ---- the archive file --------------------------------------------------------------------------------------------


@dataclass
class JobArchive:
    """A job's (or some jobless tasks') documents, exactly as stored."""

    job_id: str | None
    tasks: list[TaskDoc]
    history: list[TaskDoc]
    archived_at: datetime = field(default_factory=now_utc)
    source: str = "the archive"
    """Where it was read from (the file), for errors."""
    task_lines: list[int] = field(default_factory=list)
    """The line of each task in `source`, when read from a file."""
    history_lines: list[int] = field(default_factory=list)
    """The line of each history entry in `source`, when read from a file."""

    def where(self, index: int) -> str:
        """The position of task `index` for an error: file and line, or its rank in the archive."""
        if index < len(self.task_lines):
            return f"{self.source}:{self.task_lines[index]}"
        return f"{self.source}, task #{index + 1}"

    def where_entry(self, index: int) -> str:
        """The position of history entry `index`, as `where` gives a task's."""
        if index < len(self.history_lines):
            return f"{self.source}:{self.history_lines[index]}"
        return f"{self.source}, history entry #{index + 1}"

    def header(self) -> dict[str, Any]:
        return {
            "format": ARCHIVE_FORMAT,
            "version": ARCHIVE_VERSION,
            "job": self.job_id,
            "tasks": len(self.tasks),
            "history": len(self.history),
            "archivedAt": self.archived_at.isoformat(),
        }

    def lines(self) -> Iterator[str]:
        yield json.dumps(self.header(), ensure_ascii=False) + "\n"
        for doc in self.tasks:
            yield json_util.dumps({"task": doc}, json_options=JSON_OPTIONS) + "\n"
        for entry in self.history:
            yield json_util.dumps({"history": entry}, json_options=JSON_OPTIONS) + "\n"


def _open_for_writing(path: Path, compress: bool) -> IO[str]:
    if compress:
        return io.TextIOWrapper(gzip.GzipFile(path, "wb"), encoding="utf-8")
    return path.open("w", encoding="utf-8")


def write_archive(archive: JobArchive, path: Path, *, exclusive: bool = False) -> None:
    """Write the archive to `path` (gzip when it ends in `.gz`) through a temporary file in the same directory,
    synced and renamed, so `path` never holds half an archive. `exclusive`: FileExistsError if `path` exists."""
    if exclusive and path.exists():
        raise FileExistsError(f"{path} exists already")
    partial = path.with_name(f".{path.name}.partial")
    with _open_for_writing(partial, path.name.endswith(".gz")) as out:
        out.writelines(archive.lines())
        out.flush()
    with partial.open("rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, path)


def read_archive(path: Path) -> JobArchive:
    """An archive file, checked: InvalidOperation naming the file and line for anything that is not one."""
    with path.open("rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    opened: IO[str] = (
        io.TextIOWrapper(gzip.GzipFile(path, "rb"), encoding="utf-8")
        if compressed
        else path.open("r", encoding="utf-8")
    )
    with opened as lines:
        try:
            return _parsed(path, enumerate(lines, start=1))
        except (OSError, EOFError, UnicodeDecodeError) as error:
            raise InvalidOperation(f"{path}: not a readable archive: {error}") from None


def _parsed(path: Path, lines: Iterable[tuple[int, str]]) -> JobArchive:
    header: dict[str, Any] | None = None
    tasks: list[TaskDoc] = []
    task_lines: list[int] = []
    history: list[TaskDoc] = []
    history_lines: list[int] = []
    for number, line in lines:
        if not line.strip():
            continue
        try:
            item = json_util.loads(line, json_options=JSON_OPTIONS)
        except (ValueError, TypeError) as error:
            raise InvalidOperation(f"{path}:{number}: not Extended JSON: {error}") from None
        if header is None:
            header = _checked_header(path, item)
        elif isinstance(item, dict) and set(item) == {"task"} and isinstance(item["task"], dict):
            tasks.append(item["task"])
            task_lines.append(number)
        elif isinstance(item, dict) and set(item) == {"history"} and isinstance(item["history"], dict):
            history.append(item["history"])
            history_lines.append(number)
        else:
            raise InvalidOperation(f'{path}:{number}: expected {{"task": …}} or {{"history": …}}')
    if header is None:
        raise InvalidOperation(f"{path}: empty, not an archive")
    if (header["tasks"], header["history"]) != (len(tasks), len(history)):
        raise InvalidOperation(
            f"{path}: incomplete: the header announces {header['tasks']} tasks and {header['history']} history "
            f"entries, the file holds {len(tasks)} and {len(history)}"
        )
    missing_ids = [number for number, doc in zip(task_lines, tasks, strict=True) if "_id" not in doc]
    if missing_ids:
        raise InvalidOperation(f"{path}:{missing_ids[0]}: a task without _id")
    archived_at = _archived_at(header.get("archivedAt"))
    return JobArchive(header["job"], tasks, history, archived_at, str(path), task_lines, history_lines)


def _archived_at(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else now_utc()
    except ValueError:
        return now_utc()


def _checked_header(path: Path, item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or item.get("format") != ARCHIVE_FORMAT:
        raise InvalidOperation(f"{path}:1: not a {ARCHIVE_FORMAT} header")
    if item.get("version") != ARCHIVE_VERSION:
        version = item.get("version")
        raise InvalidOperation(f"{path}:1: archive version {version!r}, this gateway reads {ARCHIVE_VERSION}")
    if not isinstance(item.get("tasks"), int) or not isinstance(item.get("history"), int):
        raise InvalidOperation(f"{path}:1: the header must give the counts of tasks and history entries")
    return item


def archive_name(job_id: str | None, at: datetime) -> str:
    """A file name for the job's archive: the job id percent-encoded (no separator or dot can escape the
    directory), then the time, so a job archived twice never overwrites its earlier archive."""
    stamp = at.strftime("%Y%m%dT%H%M%S.%fZ")
    name = "no-job" if job_id is None else "job-" + quote(job_id, safe="")
    if len(name) > 180:  # file names stop at 255 bytes: a long id keeps its start and a hash of the rest
        name = name[:140] + "~" + hashlib.blake2b(name.encode(), digest_size=16).hexdigest()
    return f"{name}.{stamp}.jsonl.gz"


# ---- reports -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgedUnit:
    job_id: str | None
    """None: tasks without a job (each its own unit; grouped per transaction)."""
    task_ids: list[int]
    history_entries: int
    last_update: datetime | None
    archive: Path | None = None


@dataclass
class PurgeReport:
    cutoff: datetime
    dry_run: bool
    units: list[PurgedUnit] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """Jobs that changed between planning and their transaction: they stay."""

    @property
    def task_count(self) -> int:
        return sum(len(unit.task_ids) for unit in self.units)

    def lines(self) -> Iterator[str]:
        verb = "would purge" if self.dry_run else "purged"
        for unit in self.units:
            where = f" -> {unit.archive}" if unit.archive is not None else ""
            last = unit.last_update.isoformat() if unit.last_update else "unknown"
            if unit.job_id is None:
                ids = ", ".join(map(str, unit.task_ids))
                yield f"{verb} {len(unit.task_ids)} tasks without a job ({ids}){where}"
            else:
                yield f"{verb} job {unit.job_id!r}: {len(unit.task_ids)} tasks, last update {last}{where}"
        for job_id in self.kept:
            yield f"kept job {job_id!r}: it changed while the purge ran"
        jobs = sum(1 for unit in self.units if unit.job_id is not None)
        yield f"{verb} {jobs} jobs and {self.task_count} tasks not updated since {self.cutoff.isoformat()}"


@dataclass
class RestoreReport:
    job_id: str | None
    tasks: int
    history: int
    history_present: int
    links_left_out: list[tuple[int, int]]
    """Links (from, to) to tasks that exist neither in the archive nor stored."""
    links_completed: list[tuple[int, int]] = field(default_factory=list)
    """Links (from, to) between tasks of the archive that only one of the two named: restored on both sides."""

    def lines(self) -> Iterator[str]:
        job = "tasks without a job" if self.job_id is None else f"job {self.job_id!r}"
        yield f"restored {job}: {self.tasks} tasks, {self.history} history entries"
        if self.history_present:
            yield f"{self.history_present} history entries were stored already and were left as they are"
        if self.links_left_out:
            yield f"links to tasks that no longer exist were left out: {_listed(self.links_left_out)}"
        if self.links_completed:
            yield f"links one side of which the archive lacked were completed: {_listed(self.links_completed)}"


def _listed(links: list[tuple[int, int]]) -> str:
    """The first NOTED_LINKS links, and how many more."""
    shown = ", ".join(f"{a} -> {b}" for a, b in links[:NOTED_LINKS])
    hidden = len(links) - NOTED_LINKS
    return shown + (f" and {hidden} more" if hidden > 0 else "")
