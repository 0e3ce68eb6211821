"""Segment's Python SDK (segment-analytics-python, unmodified) sending a track, a page,
an identify and two more tracks (one batch) to HOST with WRITE_KEY, as session RUN.
Prints {"errors": [...]} once everything is flushed (or given up).

usage: python3 send.py HOST WRITE_KEY RUN [--gzip]
"""

import json
import sys

import segment.analytics as analytics

host, write_key, run = sys.argv[1:4]
errors = []

analytics.write_key = write_key
analytics.host = host  # The Eye's address: the SDK posts to {host}/v1/batch
analytics.gzip = "--gzip" in sys.argv
analytics.max_retries = 3
analytics.on_error = lambda error, batch: errors.append(repr(error))

user = f"user-{run}"
analytics.track(user, "Order Completed", {"total": 30, "sdk": "python"}, anonymous_id=run)
analytics.page(user, None, "Home", {"path": "/"}, anonymous_id=run)
analytics.identify(user, {"email": "python@example.com"}, anonymous_id=run)
analytics.track(user, "Item Viewed", {"item": 1}, anonymous_id=run)
analytics.track(user, "Item Viewed", {"item": 2}, anonymous_id=run)
analytics.flush()
analytics.shutdown()
print(json.dumps({"errors": errors}))
