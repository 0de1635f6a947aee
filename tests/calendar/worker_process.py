"""A task-queue worker in a process of its own, as `vcops worker` runs it, for the tests that stop one mid-send.

Arguments: the app's config (JSON) and the outbox lease in seconds. The lease is shortened here, in the worker's
process, so that the sweep may hand a stopped worker's message over after a second or two instead of minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from app import create_app
from app.queue import outbox
from app.queue.tasks import make_consumer

if __name__ == "__main__":
    config, lease = json.loads(sys.argv[1]), float(sys.argv[2])
    outbox.LEASE = dt.timedelta(seconds=lease)
    app = create_app(config)
    with app.app_context():
        make_consumer(1).run()
