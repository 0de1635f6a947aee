"""A run's events: what each ansible-runner event is (play, task, a host's result, the stats), the per-host
counts, and the writer that stores them live, in batches, on a thread of its own."""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from typing import Any

import sqlalchemy as sa

from app.db import commit_scope, db
from app.provisioning.backups.service import backup_from_event
from app.provisioning.models import Job, JobEvent
from app.provisioning.runner.processes import pgid_of
from app.provisioning.runner.scrub import Scrubber

log = logging.getLogger(__name__)
EVENT_BATCH_SECONDS = 0.2  # how long the events of a run gather before they are stored together
EVENT_BATCH_MAX = 500
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

_RESULTS = {"runner_on_ok": "ok", "runner_on_failed": "failed", "runner_on_skipped": "skipped",
            "runner_on_unreachable": "unreachable", "runner_item_on_ok": "ok", "runner_item_on_failed": "failed",
            "runner_item_on_skipped": "skipped", "runner_on_async_ok": "ok", "runner_on_async_failed": "failed"}


def classify(event: dict[str, Any]) -> tuple[str, str]:
    """(type, status) of an ansible-runner event: play, task, result (ok/changed/failed/…), stats, output."""
    name = event.get("event", "")
    data = event.get("event_data") or {}
    if name == "playbook_on_play_start":
        return "play", ""
    if name in ("playbook_on_task_start", "playbook_on_handler_task_start"):
        return "task", ""
    if name in _RESULTS:
        status = _RESULTS[name]
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        if status == "ok" and res.get("changed"):
            status = "changed"
        if status == "failed" and data.get("ignore_errors"):
            status = "ignored"
        return "result", status
    if name == "playbook_on_stats":
        return "stats", ""
    return "output", ""


def host_counts(stats: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per-host counts from the playbook_on_stats event (Ansible's ok includes the changed results)."""
    names = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable", "skipped": "skipped"}
    counts: dict[str, dict[str, int]] = {}
    for source, name in names.items():
        for host, value in (stats.get(source) or {}).items():
            counts.setdefault(host, dict.fromkeys(("ok", "changed", "failed", "unreachable", "skipped"), 0))
            counts[host][name] = int(value)
    return counts


class EventWriter:
    """Stores a run's events on a thread of its own, in order, a batch per short transaction: the events that
    came while the last batch was written, within EVENT_BATCH_SECONDS (so the job page shows a line a fraction
    of a second after Ansible printed it). The reading of ansible-playbook's output never waits for the
    database, and a run of 20 hosts writes tens of transactions instead of a thousand. A batch that cannot be
    stored is stored again one event at a time, so one bad event loses no other."""

    _END = object()

    def __init__(self, app: Any, job_id: int, scrub: Scrubber) -> None:
        self.app = app
        self.job_id = job_id
        self.scrub = scrub
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._work, name=f"job-{job_id}-events", daemon=True)
        self.pid_recorded = False

    def start(self) -> None:
        self.thread.start()

    def put(self, event: dict[str, Any]) -> None:
        self.queue.put(event)

    def close(self) -> None:
        if self.thread.is_alive():
            self.queue.put(self._END)
            self.thread.join()

    def _work(self) -> None:
        with self.app.app_context():
            ended = False
            while not ended:
                batch = [self.queue.get()]
                deadline = time.monotonic() + EVENT_BATCH_SECONDS
                while len(batch) < EVENT_BATCH_MAX and batch[-1] is not self._END:
                    try:
                        batch.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
                    except queue.Empty:
                        break
                if batch[-1] is self._END:
                    ended = True
                    batch.pop()
                if batch:
                    self._store(batch)
            db.session.remove()

    def _row(self, event: dict[str, Any]) -> JobEvent:
        kind, status = classify(event)
        data = event.get("event_data") or {}
        text = self.scrub.text
        return JobEvent(job_id=self.job_id, seq=int(event.get("counter") or 0), type=kind,
                        event=str(event.get("event", ""))[:60], host=str(data.get("host") or "")[:255],
                        task=text(str(data.get("task") or data.get("play") or ""))[:500], status=status,
                        stdout=text(_ANSI.sub("", str(event.get("stdout") or "")).replace("\r\n", "\n")))

    def _store(self, events: list[dict[str, Any]]) -> None:
        values: dict[str, Any] = {}
        if not self.pid_recorded:
            pid = next((int(e["pid"]) for e in events if e.get("pid")), None)
            if pid is not None:
                values = {"pid": pid, "pgid": pgid_of(pid)}
        try:
            self._transaction(events, values)
        except Exception:
            db.session.remove()
            if len(events) == 1 and not values:
                log.warning("job %s: event %s not stored", self.job_id, events[0].get("counter"), exc_info=True)
                return
            for event in events:  # one at a time: the others are kept
                try:
                    self._transaction([event], {})
                except Exception as exc:
                    db.session.remove()
                    log.warning("job %s: event %s not stored: %s", self.job_id, event.get("counter"),
                                type(exc).__name__)
            if values:
                self._transaction([], values)
        if values:
            self.pid_recorded = True

    def _transaction(self, events: list[dict[str, Any]], values: dict[str, Any]) -> None:
        with commit_scope() as session:
            session.add_all(self._row(e) for e in events)
            for event in events:
                backup_from_event(session, self.job_id, event, self.scrub.text)  # a backup job's configurations
            if values:
                session.execute(sa.update(Job).where(Job.id == self.job_id).values(**values))
