"""The parts both clients share: configuration, events, batching, one HTTP attempt,
how an answer is judged, backoff, and the figures in :class:`Stats`.

Nothing here starts a thread or touches an event loop; :mod:`the_eye_client.client`
and :mod:`the_eye_client.aio` drive it.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import http.client
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, List, Mapping, Optional, Tuple, Union

__all__ = [
    "Config",
    "Rejection",
    "Stats",
    "DEFAULT_LOGGER",
]

DEFAULT_LOGGER = logging.getLogger("the_eye_client")

#: How many of the latest rejections :class:`Stats` keeps.
MAX_REJECTIONS_KEPT = 100

#: Statuses that are retried with the same batch (besides every ``5xx``).
_RETRIED_STATUSES = frozenset({408, 429})

Timestamp = Union[str, _dt.datetime]


@dataclass(frozen=True)
class Config:
    """How a client talks to the server. Every duration is in seconds.

    The defaults are those of the Rust crate ``eye-client``.
    """

    #: The server's base URL, e.g. ``http://127.0.0.1:8000``; events go to ``{endpoint}/events``.
    endpoint: str
    #: An ingest token (``eye app create NAME`` prints one). Never shown in a repr or a log.
    token: str = field(repr=False)
    #: Most events in one request (the server takes up to 1,000 by default).
    batch_size: int = 100
    #: How long an event may wait for its batch to fill.
    flush_interval: float = 1.0
    #: Most events the client holds (waiting or being sent); beyond it ``track`` refuses new ones.
    max_buffer: int = 10_000
    #: Largest uncompressed request body; a batch is cut short before it passes this
    #: (the server refuses bodies over 1 MiB by default).
    max_batch_bytes: int = 1_000_000
    #: The first wait before a retry; it doubles after every failed attempt...
    initial_backoff: float = 0.1
    #: ...up to this.
    max_backoff: float = 10.0
    #: How long one request may take.
    request_timeout: float = 10.0
    #: How long ``close()`` keeps retrying what is left before counting it as dropped.
    shutdown_timeout: float = 10.0

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"the endpoint {self.endpoint!r} is not an http:// or https:// URL")
        if not isinstance(self.token, str) or not self.token:
            raise ValueError("the token must be a non-empty string")
        if not 1 <= self.batch_size <= 1000:
            raise ValueError("batch_size must be 1 to 1000")
        if self.max_buffer < 1:
            raise ValueError("max_buffer must be at least 1")
        if self.max_batch_bytes < 2:
            raise ValueError("max_batch_bytes is too small")
        for name in (
            "flush_interval",
            "initial_backoff",
            "max_backoff",
            "request_timeout",
            "shutdown_timeout",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} may not be negative")
        if self.request_timeout == 0:
            raise ValueError("request_timeout must be positive")

    @property
    def url(self) -> str:
        """Where batches are posted."""
        return self.endpoint.rstrip("/") + "/events"


@dataclass(frozen=True)
class Rejection:
    """An event the server refused on its own (the rest of its batch was accepted).

    Rejections are final: the event is in the server's error store under ``error_id``
    (``GET /errors/{error_id}``) and is never sent again.
    """

    #: The event's client ``id`` (the idempotency key ``track`` returned or set).
    id: Optional[str]
    #: The reason code, e.g. ``invalid_timestamp`` (see the guide's "Reason codes").
    code: Optional[str]
    message: Optional[str]
    #: The field at fault, when there is one.
    field: Optional[str]
    #: The error's id in the server's error store.
    error_id: Optional[str]


@dataclass(frozen=True)
class Stats:
    """What became of the tracked events so far (a snapshot)."""

    #: Events accepted by the server (answered ``202`` and listed as accepted).
    sent: int = 0
    #: Events refused by the server one by one (now in its error store); final.
    rejected: int = 0
    #: Events never answered: refused by a full buffer (or a closed client), or still
    #: unsent when ``close()``'s deadline passed.
    dropped: int = 0
    #: Events in batches the server refused whole with a ``4xx`` that is not retried
    #: (a bad token, a body it refuses), and events too large to send at all.
    failed: int = 0
    #: Requests sent again after a failed attempt.
    retries: int = 0
    #: The last :data:`MAX_REJECTIONS_KEPT` rejections, oldest first.
    rejections: Tuple[Rejection, ...] = field(default=())


class Counters:
    """The live figures behind :class:`Stats`; safe to update from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.rejected = 0
        self.dropped = 0
        self.failed = 0
        self.retries = 0
        self.rejections: Deque[Rejection] = deque(maxlen=MAX_REJECTIONS_KEPT)

    def add(
        self,
        *,
        sent: int = 0,
        rejected: int = 0,
        dropped: int = 0,
        failed: int = 0,
        retries: int = 0,
        rejections: Tuple[Rejection, ...] = (),
    ) -> None:
        with self._lock:
            self.sent += sent
            self.rejected += rejected
            self.dropped += dropped
            self.failed += failed
            self.retries += retries
            self.rejections.extend(rejections)

    def snapshot(self) -> Stats:
        with self._lock:
            return Stats(
                sent=self.sent,
                rejected=self.rejected,
                dropped=self.dropped,
                failed=self.failed,
                retries=self.retries,
                rejections=tuple(self.rejections),
            )


def now_rfc3339() -> str:
    """Now, UTC, RFC 3339 with microseconds and ``Z``: ``2024-05-01T09:15:27.243860Z``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def uuid7() -> str:
    """A new UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits.

    Default event ids are UUIDv7 because the server derives a time-ordered event id
    from them, which keeps its store fast as it grows (random ids do not).
    """
    millis = time.time_ns() // 1_000_000
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | (0x7 << 76)  # version 7
    value = value & ~(0x3 << 62) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def format_timestamp(value: Timestamp) -> str:
    """A ``datetime`` as RFC 3339 (a naive one is taken as UTC); a string as it is."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, str) and value:
        return value
    raise TypeError("timestamp must be a non-empty string or a datetime")


@dataclass(frozen=True)
class Prepared:
    """An event as it will be sent: its client id and its JSON text."""

    id: str
    json: bytes


def prepare_event(
    session_id: str,
    category: str,
    name: str,
    data: Optional[Mapping[str, Any]],
    *,
    id: Optional[str],
    timestamp: Optional[Timestamp],
    seq: Optional[int],
) -> Prepared:
    """Checks an event, gives it an ``id`` and a ``timestamp`` when it has none, and
    encodes it now (so later changes to ``data`` by the caller do not change it).

    Raises ``TypeError``/``ValueError`` for what could never be sent (a missing field,
    ``data`` that is not a JSON object, NaN or infinity anywhere in it).
    """
    for label, value in (("session_id", session_id), ("category", category), ("name", name)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{label} must be a non-empty string")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise TypeError("data must be a mapping (a JSON object)")
    if id is None:
        id = uuid7()
    elif not isinstance(id, str) or not id:
        raise TypeError("id must be a non-empty string")
    event: dict[str, Any] = {
        "id": id,
        "session_id": session_id,
        "category": category,
        "name": name,
        "timestamp": now_rfc3339() if timestamp is None else format_timestamp(timestamp),
        "data": data,
    }
    if seq is not None:
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise TypeError("seq must be an int")
        event["seq"] = seq
    try:
        text = json.dumps(event, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError as error:  # NaN or infinity: not JSON; the whole batch would be refused
        raise ValueError(f"the event is not valid JSON: {error}") from None
    return Prepared(id=id, json=text.encode("utf-8"))


def encode_batch(batch: List[Prepared]) -> bytes:
    """The gzip-compressed JSON array of a batch."""
    body = b"[" + b",".join(event.json for event in batch) + b"]"
    return gzip.compress(body, compresslevel=6)


def batch_bytes(batch_len: int, events_bytes: int) -> int:
    """The uncompressed size of a batch of ``batch_len`` events totalling ``events_bytes``."""
    return events_bytes + max(batch_len - 1, 0) + 2


class Buffer:
    """The events waiting to be sent, and how many were tracked and answered.

    Not thread-safe by itself: the threaded client guards it with a lock; the asyncio
    client only touches it from its event loop.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.events: Deque[Prepared] = deque()
        #: Events ever taken by ``add``.
        self.tracked = 0
        #: Events that are settled (answered, failed or given up), in tracking order.
        self.answered = 0
        #: When (monotonic) the oldest waiting event arrived, or the last batch left.
        self.oldest: Optional[float] = None
        #: A flush asked for everything tracked up to this count to leave now.
        self.flush_upto = 0

    @property
    def held(self) -> int:
        """Events waiting or being sent: what ``max_buffer`` bounds."""
        return self.tracked - self.answered

    def add(self, event: Prepared, now: float) -> bool:
        if self.held >= self.config.max_buffer:
            return False
        self.events.append(event)
        self.tracked += 1
        if self.oldest is None:
            self.oldest = now
        return True

    def full_batch_waiting(self) -> bool:
        return len(self.events) >= self.config.batch_size

    def take(self, now: float, closing: bool) -> Optional[List[Prepared]]:
        """The next batch when one is due, else ``None``."""
        if not self.events:
            return None
        sent_upto = self.tracked - len(self.events)
        due = (
            len(self.events) >= self.config.batch_size
            or closing
            or self.flush_upto > sent_upto
            or (self.oldest is not None and now - self.oldest >= self.config.flush_interval)
        )
        if not due:
            return None
        batch: List[Prepared] = []
        size = 0
        while self.events and len(batch) < self.config.batch_size:
            nxt = self.events[0]
            if batch and batch_bytes(len(batch) + 1, size + len(nxt.json)) > self.config.max_batch_bytes:
                break
            batch.append(self.events.popleft())
            size += len(nxt.json)
        self.oldest = now if self.events else None
        return batch

    def wait_time(self, now: float) -> float:
        """How long the sender may sleep before a batch is due by time."""
        if self.oldest is None:
            return self.config.flush_interval
        return max(0.0, self.config.flush_interval - (now - self.oldest))


@dataclass(frozen=True)
class Response:
    """The outcome of one HTTP attempt: a status and body, or the error that stopped it."""

    status: Optional[int]
    body: bytes = b""
    retry_after: Optional[float] = None
    error: Optional[str] = None


def _retry_after(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: rare; the backoff covers it
    return seconds if seconds >= 0 else None


def post(config: Config, body: bytes, timeout: float) -> Response:
    """One ``POST {endpoint}/events`` of a gzipped batch. Never raises."""
    request = urllib.request.Request(
        config.url,
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {config.token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": "the-eye-client-python",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Response(status=answer.status, body=answer.read())
    except urllib.error.HTTPError as error:
        try:
            text = error.read()
        except (OSError, http.client.HTTPException):
            text = b""
        retry_after = _retry_after(error.headers.get("Retry-After") if error.headers else None)
        error.close()
        return Response(status=error.code, body=text, retry_after=retry_after)
    except (OSError, http.client.HTTPException, socket.timeout) as error:
        # URLError (refused, DNS), timeouts, reset or closed connections.
        return Response(status=None, error=f"{type(error).__name__}: {error}")


@dataclass(frozen=True)
class Verdict:
    """What to do after an attempt: stop (the batch is settled) or retry it."""

    retry: bool
    retry_after: Optional[float] = None


def judge(
    response: Response, batch: List[Prepared], counters: Counters, logger: logging.Logger
) -> Verdict:
    """Counts a settled batch in ``counters``, or says it must be retried."""
    status = response.status
    count = len(batch)
    if status is None:
        logger.debug("sending a batch of %d events failed (%s); will retry", count, response.error)
        return Verdict(retry=True)
    if status == 202:
        accepted, rejected, rejections = _read_verdicts(response.body, batch)
        counters.add(sent=accepted, rejected=rejected, rejections=rejections)
        if rejected:
            logger.warning(
                "the server refused %d of %d events (they are in its error store): %s",
                rejected,
                count,
                ", ".join(f"{r.id}: {r.code}" for r in rejections[:5]),
            )
        return Verdict(retry=False)
    if status in _RETRIED_STATUSES or 500 <= status <= 599:
        logger.debug("the server answered %d to a batch of %d events; will retry", status, count)
        return Verdict(retry=True, retry_after=response.retry_after)
    logger.error(
        "the server refused a batch of %d events with %d (not retried): %s",
        count,
        status,
        response.body[:500].decode("utf-8", "replace"),
    )
    counters.add(failed=count)
    return Verdict(retry=False)


def _read_verdicts(body: bytes, batch: List[Prepared]) -> Tuple[int, int, Tuple[Rejection, ...]]:
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        # A 202 promises the batch was taken; count it so even without a readable answer.
        return len(batch), 0, ()
    rejections: List[Rejection] = []
    results = answer.get("results")
    if isinstance(results, list):
        for result in results:
            if not isinstance(result, dict) or result.get("status") != "rejected":
                continue
            index = result.get("index")
            error = result.get("error")
            if not isinstance(error, dict):
                error = {}
            rejections.append(
                Rejection(
                    id=batch[index].id if isinstance(index, int) and 0 <= index < len(batch) else None,
                    code=_str_or_none(error.get("code")),
                    message=_str_or_none(error.get("message")),
                    field=_str_or_none(error.get("field")),
                    error_id=_str_or_none(result.get("error_id")),
                )
            )
    rejected = answer.get("rejected")
    if not isinstance(rejected, int):
        rejected = len(rejections)
    accepted = answer.get("accepted")
    if not isinstance(accepted, int):
        accepted = len(batch) - rejected
    return accepted, rejected, tuple(rejections)


def _str_or_none(value: object) -> Optional[str]:
    return value if isinstance(value, str) else None


class Backoff:
    """Exponential backoff with full jitter: the n-th wait is random in
    ``[0, min(initial * 2**n, max)]``; a longer ``Retry-After`` wins."""

    def __init__(self, config: Config) -> None:
        self._current = config.initial_backoff
        self._max = config.max_backoff

    def next_wait(self, retry_after: Optional[float]) -> float:
        wait = random.uniform(0.0, self._current)
        self._current = min(self._current * 2, self._max)
        if retry_after is not None and retry_after > wait:
            return retry_after
        return wait
