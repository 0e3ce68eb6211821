"""The asyncio client: the same rules as :class:`the_eye_client.Client`, with a task
on the running event loop instead of a thread. Each HTTP request runs in a worker
thread (``asyncio.to_thread``), so the loop never blocks on the network."""

from __future__ import annotations

import asyncio
import logging
import time
from types import TracebackType
from typing import Any, List, Mapping, Optional, Type

from ._core import Backoff, Prepared, Stats, Timestamp, encode_batch, judge, post
from .client import _ClientBase

__all__ = ["AsyncClient"]

_CLOSE_GRACE = 1.0


class AsyncClient(_ClientBase):
    """Sends events to The Eye from an asyncio task, batched, gzipped and retried.

    Use it on one event loop, ideally as ``async with AsyncClient(...) as client``.
    ``track`` is a plain (not ``async``) method: it only buffers, never waits, and may
    be called from any coroutine or callback on that loop (not from other threads).
    The sending task starts with the first ``track`` (or ``async with``).
    ``flush`` and ``close`` are coroutines. The constructor takes the same arguments
    as :class:`the_eye_client.Client`.
    """

    def _setup(self) -> None:
        """This client's own state, made at the end of the shared constructor."""
        self._closing = False
        self._deadline: Optional[float] = None
        # Created on the running loop by _start() (on 3.9 asyncio primitives bind to
        # a loop when made).
        self._task: Optional[asyncio.Task[None]] = None
        self._wake: Optional[asyncio.Event] = None
        self._close_requested: Optional[asyncio.Event] = None
        self._progress: Optional[asyncio.Condition] = None

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
        """Buffers an event and returns at once; exactly as :meth:`Client.track`.

        Must be called on the client's event loop (it starts the sending task).
        """
        event = self._prepare(session_id, category, name, data, id, timestamp, seq)
        if event is None:
            return False
        if self._closing:
            return self._refused("the client is closed")
        wake = self._start()
        was_empty = not self._buffer.events
        if not self._buffer.add(event, time.monotonic()):
            return self._refused(f"the buffer is full ({self.config.max_buffer} events)")
        if was_empty or self._buffer.full_batch_waiting():
            wake.set()
        return True

    async def flush(self, timeout: Optional[float] = None) -> bool:
        """Sends everything tracked so far now and waits until it is settled; exactly
        as :meth:`Client.flush`. Returns ``False`` when ``timeout`` passed first."""
        target = self._buffer.tracked
        if self._buffer.answered >= target:
            return True
        self._buffer.flush_upto = max(self._buffer.flush_upto, target)
        self._start().set()
        progress = self._progress
        assert progress is not None

        async def settled() -> None:
            async with progress:
                await progress.wait_for(lambda: self._buffer.answered >= target)

        try:
            await asyncio.wait_for(settled(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def close(self, timeout: Optional[float] = None) -> Stats:
        """Sends what is buffered, retrying for at most ``timeout`` seconds (default
        ``shutdown_timeout``), stops the task and returns the final figures; exactly as
        :meth:`Client.close`."""
        if not self._closing:
            wait = self.config.shutdown_timeout if timeout is None else max(0.0, timeout)
            self._closing = True
            self._deadline = time.monotonic() + wait
            if self._wake is not None:
                self._wake.set()
            if self._close_requested is not None:
                self._close_requested.set()
        task, deadline = self._task, self._deadline
        if task is not None and not task.done():
            assert deadline is not None
            try:
                await asyncio.wait_for(
                    asyncio.shield(task), max(0.0, deadline - time.monotonic()) + _CLOSE_GRACE
                )
            except asyncio.TimeoutError:
                self._log.warning("the sender did not stop by close()'s deadline")
        return self.stats

    async def __aenter__(self) -> AsyncClient:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    # -- the sending task -----------------------------------------------------------

    def _start(self) -> asyncio.Event:
        """Starts the sending task on the running loop, once; returns its wake event."""
        if self._wake is None:
            loop = asyncio.get_running_loop()  # RuntimeError outside a loop: documented
            self._wake = asyncio.Event()
            self._close_requested = asyncio.Event()
            self._progress = asyncio.Condition()
            self._task = loop.create_task(self._run())
        return self._wake

    async def _run(self) -> None:
        wake, progress = self._wake, self._progress
        assert wake is not None and progress is not None
        while True:
            now = time.monotonic()
            batch = self._buffer.take(now, self._closing)
            if batch is None:
                if self._closing:
                    return
                wake.clear()
                wait = self._buffer.wait_time(now) if self._buffer.events else None
                try:
                    await asyncio.wait_for(wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                await self._send(batch)
            finally:
                self._buffer.answered += len(batch)
                async with progress:
                    progress.notify_all()

    async def _send(self, batch: List[Prepared]) -> None:
        body = encode_batch(batch)
        backoff = Backoff(self.config)
        while True:
            timeout = self.config.request_timeout
            if self._deadline is not None:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    self._give_up(batch)
                    return
                timeout = min(timeout, left)
            response = await asyncio.to_thread(post, self.config, body, timeout)
            verdict = judge(response, batch, self._counters, self._log)
            if not verdict.retry:
                return
            await self._pause(backoff.next_wait(verdict.retry_after))
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self._give_up(batch)
                return
            self._counters.add(retries=1)

    async def _pause(self, wait: float) -> None:
        end = time.monotonic() + wait
        close_requested = self._close_requested
        assert close_requested is not None
        if not close_requested.is_set():
            try:
                await asyncio.wait_for(close_requested.wait(), wait)
            except asyncio.TimeoutError:
                pass
        if self._deadline is not None:
            end = min(end, self._deadline)
        rest = end - time.monotonic()
        if rest > 0:
            await asyncio.sleep(rest)

    def _give_up(self, batch: List[Prepared]) -> None:
        self._log.warning("closing: a batch of %d unanswered events was dropped", len(batch))
        self._counters.add(dropped=len(batch))
