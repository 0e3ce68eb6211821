"""The threaded client: ``track`` buffers, a background thread sends."""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from types import TracebackType
from typing import Any, List, Mapping, Optional, Type

from ._core import (
    DEFAULT_LOGGER,
    Backoff,
    Buffer,
    Config,
    Counters,
    Prepared,
    Stats,
    Timestamp,
    batch_bytes,
    encode_batch,
    judge,
    post,
    prepare_event,
)

__all__ = ["Client"]

#: How long ``close()`` waits for the sender beyond its deadline (an attempt in flight).
_JOIN_GRACE = 1.0

#: Clients not closed yet; closed when the interpreter exits (a safety net: call close()).
_OPEN_CLIENTS: "weakref.WeakSet[Client]" = weakref.WeakSet()


@atexit.register
def _close_open_clients() -> None:
    for client in list(_OPEN_CLIENTS):
        client.close()


class _ClientBase:
    """What both clients share: configuration, counters and ``track``'s checks."""

    def __init__(
        self,
        endpoint: str,
        token: str,
        *,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_buffer: int = 10_000,
        max_batch_bytes: int = 1_000_000,
        initial_backoff: float = 0.1,
        max_backoff: float = 10.0,
        request_timeout: float = 10.0,
        shutdown_timeout: float = 10.0,
        logger: Optional[logging.Logger] = None,
    ) -> None:
        self.config = Config(
            endpoint=endpoint,
            token=token,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_buffer=max_buffer,
            max_batch_bytes=max_batch_bytes,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            request_timeout=request_timeout,
            shutdown_timeout=shutdown_timeout,
        )
        self._log = logger if logger is not None else DEFAULT_LOGGER
        self._counters = Counters()
        self._buffer = Buffer(self.config)
        self._setup()

    def _setup(self) -> None:
        """Each client's own state (a thread, or asyncio primitives)."""

    @property
    def stats(self) -> Stats:
        """A snapshot of what became of the tracked events so far."""
        return self._counters.snapshot()

    def _prepare(
        self,
        session_id: str,
        category: str,
        name: str,
        data: Optional[Mapping[str, Any]],
        id: Optional[str],
        timestamp: Optional[Timestamp],
        seq: Optional[int],
    ) -> Optional[Prepared]:
        """The event ready to buffer, or ``None`` (counted) when it is too large to send."""
        event = prepare_event(
            session_id, category, name, data, id=id, timestamp=timestamp, seq=seq
        )
        if batch_bytes(1, len(event.json)) > self.config.max_batch_bytes:
            self._log.error(
                "event %s is %d bytes, more than max_batch_bytes (%d); not sent",
                event.id,
                len(event.json),
                self.config.max_batch_bytes,
            )
            self._counters.add(failed=1)
            return None
        return event

    def _refused(self, why: str) -> bool:
        self._counters.add(dropped=1)
        self._log.warning("event dropped: %s", why)
        return False


class Client(_ClientBase):
    """Sends events to The Eye from a background thread, batched, gzipped and retried.

    ``track`` never blocks on the network: it buffers the event and returns. A daemon
    thread sends a batch when ``batch_size`` events wait or ``flush_interval`` seconds
    after the oldest waiting one was tracked, and retries it (same events, same ids)
    until the server answers. Call :meth:`close` (or use ``with``) before the program
    ends; a client still open when the interpreter exits is closed then (``atexit``),
    which waits up to ``shutdown_timeout``.

    Safe to share between threads.
    """

    def _setup(self) -> None:
        """This client's own state, made at the end of the shared constructor."""
        self._cond = threading.Condition()
        self._closing = False
        self._deadline: Optional[float] = None
        self._close_requested = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="the-eye-client-sender", daemon=True
        )
        self._thread.start()
        _OPEN_CLIENTS.add(self)

    # -- the public API -------------------------------------------------------------

    def track(
        self,
        session_id: str,
        category: str,
        name: str,
        data: Optional[Mapping[str, Any]] = None,
        *,
        id: Optional[str] = None,
        timestamp: Optional[Timestamp] = None,
        seq: Optional[int] = None,
    ) -> bool:
        """Buffers an event for sending and returns at once.

        ``id`` (the idempotency key) defaults to a new UUIDv7 string; ``timestamp``
        (an RFC 3339 string or a ``datetime``; a naive one is UTC) defaults to now.
        ``data`` is encoded now, so changing it afterwards changes nothing.

        Returns ``True`` when the event was buffered, ``False`` when it was dropped:
        the buffer already holds ``max_buffer`` events or the client is closed (both
        counted in ``stats.dropped``), or the event alone is larger than
        ``max_batch_bytes`` (counted in ``stats.failed``). Raises ``TypeError`` or
        ``ValueError`` for an event that could never be sent (an empty ``name``,
        ``data`` that is not a mapping or not JSON, NaN).
        """
        event = self._prepare(session_id, category, name, data, id, timestamp, seq)
        if event is None:
            return False
        with self._cond:
            if self._closing:
                return self._refused("the client is closed")
            was_empty = not self._buffer.events
            if not self._buffer.add(event, time.monotonic()):
                return self._refused(f"the buffer is full ({self.config.max_buffer} events)")
            if was_empty or self._buffer.full_batch_waiting():
                self._cond.notify_all()
        return True

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Sends everything tracked so far now and waits until it is settled.

        Settled means answered by the server (accepted, rejected, or refused whole),
        or dropped by ``close()``'s deadline; ``stats`` says which. Retries go on after
        a timeout: ``flush`` only stops waiting. Returns ``False`` when ``timeout``
        seconds passed first, ``True`` otherwise.
        """
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._buffer.tracked
            self._buffer.flush_upto = max(self._buffer.flush_upto, target)
            self._cond.notify_all()
            while self._buffer.answered < target:
                if end is None:
                    self._cond.wait()
                else:
                    left = end - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
            return True

    def close(self, timeout: Optional[float] = None) -> Stats:
        """Sends what is buffered, retrying for at most ``timeout`` seconds (default
        ``shutdown_timeout``), then stops the sender and returns the final figures.

        Whatever is still unanswered at the deadline is counted in ``stats.dropped``.
        Later ``track`` calls return ``False``. Calling it again is harmless.
        """
        wait = self.config.shutdown_timeout if timeout is None else max(0.0, timeout)
        with self._cond:
            if not self._closing:
                self._closing = True
                self._deadline = time.monotonic() + wait
                self._cond.notify_all()
            deadline = self._deadline
        self._close_requested.set()
        _OPEN_CLIENTS.discard(self)
        if threading.current_thread() is not self._thread:
            assert deadline is not None
            self._thread.join(max(0.0, deadline - time.monotonic()) + _JOIN_GRACE)
            if self._thread.is_alive():
                self._log.warning("the sender did not stop by close()'s deadline")
        return self.stats

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    # -- the sender thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while True:
                        now = time.monotonic()
                        batch = self._buffer.take(now, self._closing)
                        if batch is not None:
                            break
                        if self._closing:
                            return
                        # Sleep until a first event, a full batch, a flush or close wakes
                        # us, or the oldest event's interval runs out.
                        self._cond.wait(
                            self._buffer.wait_time(now) if self._buffer.events else None
                        )
                try:
                    self._send(batch)
                finally:
                    with self._cond:
                        self._buffer.answered += len(batch)
                        self._cond.notify_all()
        except BaseException:  # pragma: no cover - a bug; never leave flush() waiting
            self._log.exception("the sender thread failed")
            with self._cond:
                self._closing = True
                left = len(self._buffer.events)
                self._buffer.events.clear()
                self._buffer.answered += left
                self._counters.add(dropped=left)
                self._cond.notify_all()

    def _send(self, batch: List[Prepared]) -> None:
        """Sends one batch until it is answered or close()'s deadline passes."""
        body = encode_batch(batch)
        backoff = Backoff(self.config)
        while True:
            timeout = self.config.request_timeout
            deadline = self._deadline
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._give_up(batch)
                    return
                timeout = min(timeout, left)
            verdict = judge(post(self.config, body, timeout), batch, self._counters, self._log)
            if not verdict.retry:
                return
            self._pause(backoff.next_wait(verdict.retry_after))
            deadline = self._deadline
            if deadline is not None and time.monotonic() >= deadline:
                self._give_up(batch)
                return
            self._counters.add(retries=1)

    def _pause(self, wait: float) -> None:
        """Sleeps ``wait`` seconds, but no later than close()'s deadline."""
        end = time.monotonic() + wait
        if not self._close_requested.is_set():
            self._close_requested.wait(wait)  # returns early when close() begins
        deadline = self._deadline
        if deadline is not None:
            end = min(end, deadline)
        rest = end - time.monotonic()
        if rest > 0:
            time.sleep(rest)

    def _give_up(self, batch: List[Prepared]) -> None:
        self._log.warning("closing: a batch of %d unanswered events was dropped", len(batch))
        self._counters.add(dropped=len(batch))
