"""A client for The Eye, the behavioural event collector.

``track`` an event and go on: the client buffers events, sends them in gzipped
batches in the background, and retries each batch (same events, same ids) until the
server answers, so every event is stored exactly once.

>>> from the_eye_client import Client
>>> with Client("http://127.0.0.1:8000", "eye_i_...") as client:  # doctest: +SKIP
...     client.track("session-1", "page interaction", "pageview",
...                  {"host": "www.example.com", "path": "/"})

:class:`Client` sends from a background thread; :class:`AsyncClient` from an asyncio
task. See ``README.md`` for the rules both follow.
"""

from __future__ import annotations

from ._core import Config, Rejection, Stats
from .aio import AsyncClient
from .client import Client

__all__ = ["AsyncClient", "Client", "Config", "Rejection", "Stats", "__version__"]

__version__ = "0.1.0"
