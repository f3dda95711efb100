"""The OTLP exporter's HTTP session (gateway.tracing): what the gateway reads of a collector's answers. Their
body bounded in size and in time, and a collector's `Retry-After` kept past the export it came with: the
exporter honours it within one export only (its retries), and would post the next batch at once."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from opentelemetry.exporter.http.transport._requests import RequestsHTTPResult
from opentelemetry.exporter.otlp.common.http import _extract_retry_after, _is_retryable
from requests import PreparedRequest, Response, Session
from requests.exceptions import ReadTimeout, RequestException

from gateway.observability import AtMostEvery

log = logging.getLogger("gateway.tracing")
MAX_RETRY_AFTER_S = 60.0
"""The longest wait a collector's `Retry-After` is honoured for: a collector asking for a day (or a proxy's
misconfigured answer) must not silence tracing for a day. Past it, batches are posted again (and a collector
still refusing says so again)."""


MAX_COLLECTOR_ANSWER_BYTES = 64 * 1024
"""How much of a collector's answer to an export is read. An OTLP answer is a few bytes (a partial success, a
status message); whatever answers at the endpoint with more (a misconfigured proxy, a file server) has its
connection closed past this, and the export's outcome is its status code as before."""
_ANSWER_CHUNK_BYTES = 16 * 1024


class BoundedAnswers(Session):
    """The exporter's HTTP session (its `session`): an answer's body is read as a stream, at most
    MAX_COLLECTOR_ANSWER_BYTES of it, where requests would read a whole body, however large, into the export
    thread's memory, and within the time the exporter gave the request (requests' timeout bounds each read of
    the socket, not the answer: a collector trickling a byte at a time would hold the export thread for as
    long as it liked). A body read to its end leaves the connection to be used again; a longer one, or one
    still coming at the deadline, is closed. A refusal's `Retry-After` is kept (`waiting`): the exporter
    (DirectOTLPExporter) posts nothing until it has passed."""

    def __init__(self) -> None:
        super().__init__()
        self._not_before = 0.0
        """Until when (monotonic) the collector asked not to be sent to (its `Retry-After`, bounded)."""
        self._long_answers = AtMostEvery()
        self._waits = AtMostEvery()

    def waiting(self) -> bool:
        """Whether the collector asked not to be sent anything yet: an export now is dropped unsent."""
        return time.monotonic() < self._not_before

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        timeout = kwargs.get("timeout")
        deadline = time.monotonic() + timeout if isinstance(timeout, int | float) else None
        kwargs["stream"] = True
        response = super().send(request, **kwargs)
        cut = _AnswerCut(response, deadline)
        try:
            if not _read_bounded(response) and self._long_answers.due():
                log.warning(
                    "the collector's answer is longer than %d bytes: not read further (said once a minute)",
                    MAX_COLLECTOR_ANSWER_BYTES,
                )
        except RequestException:
            if not cut.passed():
                raise
        finally:
            cut.cancel()
            response.close()  # read to its end: the connection goes back to the pool; else it is closed
        if cut.passed():
            raise ReadTimeout(f"the collector's answer did not end within {timeout}s", request=request)
        self._keep_retry_after(response)
        return response

    def _keep_retry_after(self, response: Response) -> None:
        """A refusal's `Retry-After` (429, 503, …: the statuses the exporter retries), read as the exporter reads
        it, kept as the time before which nothing is sent, MAX_RETRY_AFTER_S at most."""
        if not _is_retryable(response.status_code):
            return
        wait_s = _extract_retry_after(RequestsHTTPResult(status_code=response.status_code, response=response))
        if not wait_s:
            return
        wait_s = min(wait_s, MAX_RETRY_AFTER_S)
        self._not_before = max(self._not_before, time.monotonic() + wait_s)
        if self._waits.due():
            log.warning(
                "the collector answered %d with Retry-After: spans dropped unsent for %gs", response.status_code, wait_s
            )


def _read_bounded(response: Response) -> bool:
    """Read an answer's body, at most MAX_COLLECTOR_ANSWER_BYTES of it; False when it was longer."""
    read = 0
    for chunk in response.iter_content(_ANSWER_CHUNK_BYTES):
        read += len(chunk)
        if read > MAX_COLLECTOR_ANSWER_BYTES:
            return False
    return True


class _AnswerCut:
    """Ends the reading of an answer at the export's deadline: a timer thread shuts the socket down for reading
    (urllib3's `HTTPResponse.shutdown`, made for this), which ends a read blocked on the collector."""

    def __init__(self, response: Response, deadline: float | None) -> None:
        self._response = response
        self._passed = threading.Event()
        self._timer: threading.Timer | None = None
        if deadline is not None:
            self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._cut)
            self._timer.daemon = True
            self._timer.start()

    def _cut(self) -> None:
        self._passed.set()
        with contextlib.suppress(Exception):  # already closed or released: nothing left to cut
            self._response.raw.shutdown()

    def cancel(self) -> None:
        """No cut from now on (one under way is waited for: the answer is closed after it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()

    def passed(self) -> bool:
        return self._passed.is_set()
