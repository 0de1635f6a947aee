"""Monitoring room, probe agent: writing what a step measured, the latest state of each target, a history sample,
and pruning.

A step touches every target of the agent's shard, thousands of rows, so it writes in bulk: one multi-row upsert
(INSERT ... ON CONFLICT DO UPDATE, on SQLite and PostgreSQL alike) for the states, one executemany insert for
the samples, and a bounded delete of the history older than PROBE_HISTORY_MINUTES; then the step is added to
the hourly and daily rollups the reports read (app.monitoring.rollups: one upsert per table) and the rollups past
their retention are pruned. The caller's commit_scope() makes it one transaction: the board never sees half a
step, and a rollup never counts a step the states do not have.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.dialects import postgresql, sqlite

from app.monitoring import rollups
from app.monitoring.models import EndpointSample, EndpointState, LinkSample, LinkState
from app.monitoring.topology import Shard

# Samples older than the history are deleted at most this many per table and step (or twice the step's rows,
# when more): a backlog (an agent stopped for a day) is worked off over a few steps instead of one long
# transaction that would hold SQLite's write lock.
PRUNE_BATCH = 5000

LINK_COLUMNS = ("up", "sent", "lost", "rtt_median", "rtt_min", "rtt_max", "jitter")
ENDPOINT_COLUMNS = ("up", "icmp_up", "rtt", "sip_port_open", "mgmt_port_open", "registered", "in_call",
                    "call_loss_ratio", "call_jitter", "error")

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Written:
    """What one step changed in the database."""

    states: int
    samples: int
    forgotten: int  # states of targets the shard no longer probes (retired, moved, address removed)
    pruned: int  # history samples deleted
    rolled_up: int = 0  # rollup rows added to (a row per target, hourly and daily)
    rollups_pruned: int = 0  # rollup rows deleted, past ROLLUP_HOURLY_DAYS / ROLLUP_DAILY_MONTHS


def _insert(session: so.Session, table: sa.Table) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"probe results are written to SQLite or PostgreSQL, not {dialect}")


def _upsert_states(session: so.Session, table: sa.Table, key: str, columns: Sequence[str], rows: Sequence[Row],
                   agent: str, measured_at: dt.datetime) -> None:
    """Replace each target's state; changed_at moves only when `up` flips (a new row starts at measured_at)."""
    if not rows:
        return
    values = [{key: row[key], **{c: row[c] for c in columns}, "agent": agent, "measured_at": measured_at,
               "changed_at": measured_at} for row in rows]
    stmt = _insert(session, table)
    excluded = stmt.excluded
    # Every SET expression reads the row as it was before this statement, on both databases.
    flipped = sa.case((table.c.up != excluded.up, excluded.measured_at), else_=table.c.changed_at)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c[key]],
        set_={**{c: excluded[c] for c in columns}, "agent": excluded.agent, "measured_at": excluded.measured_at,
              "changed_at": flipped})
    session.execute(stmt, values)


def _insert_samples(session: so.Session, table: sa.Table, key: str, columns: Sequence[str], rows: Sequence[Row],
                    measured_at: dt.datetime) -> None:
    if rows:
        session.execute(sa.insert(table), [{key: row[key], **{c: row[c] for c in columns},
                                            "measured_at": measured_at} for row in rows])


def _forget_states(session: so.Session, table: sa.Table, key: str, kept: Sequence[int], shard: Shard) -> int:
    """Delete the states of this shard's targets that are no longer probed, so the board does not show a
    retired link as up forever. Other shards' rows are theirs to keep."""
    column = table.c[key]
    owned = (column % shard.count) == (shard.index - 1) if shard.count > 1 else sa.true()
    result = session.execute(sa.delete(table).where(owned, column.not_in(kept)))
    return int(result.rowcount or 0)


def _prune(session: so.Session, table: sa.Table, before: dt.datetime, limit: int) -> int:
    oldest = sa.select(table.c.id).where(table.c.measured_at < before).limit(limit)
    result = session.execute(sa.delete(table).where(table.c.id.in_(oldest)))
    return int(result.rowcount or 0)


def save_step(session: so.Session, *, agent: str, shard: Shard, measured_at: dt.datetime,
              links: Sequence[Row], endpoints: Sequence[Row], history_minutes: float,
              rollup_settings: rollups.RollupSettings | None = None) -> Written:
    """Write one step: `links` are rows with link_id and LINK_COLUMNS, `endpoints` rows with endpoint_id and
    ENDPOINT_COLUMNS (and the echoes' sent, lost and jitter for the rollups). With `rollup_settings` (the agent
    always gives them) the step is added to the rollups. Flushes nothing else and does not commit: the caller's
    commit_scope does."""
    link_table, endpoint_table = LinkState.__table__, EndpointState.__table__
    _upsert_states(session, link_table, "link_id", LINK_COLUMNS, links, agent, measured_at)
    _upsert_states(session, endpoint_table, "endpoint_id", ENDPOINT_COLUMNS, endpoints, agent, measured_at)
    _insert_samples(session, LinkSample.__table__, "link_id", LINK_COLUMNS, links, measured_at)
    _insert_samples(session, EndpointSample.__table__, "endpoint_id", ENDPOINT_COLUMNS, endpoints, measured_at)
    forgotten = (_forget_states(session, link_table, "link_id", [r["link_id"] for r in links], shard)
                 + _forget_states(session, endpoint_table, "endpoint_id", [r["endpoint_id"] for r in endpoints],
                                  shard))
    before = measured_at - dt.timedelta(minutes=history_minutes)
    limit = max(PRUNE_BATCH, 2 * (len(links) + len(endpoints)))
    pruned = (_prune(session, LinkSample.__table__, before, limit)
              + _prune(session, EndpointSample.__table__, before, limit))
    rolled_up = rollups_pruned = 0
    if rollup_settings is not None:
        rolled_up = rollups.add_step(session, measured_at, links, endpoints, rollup_settings)
        rollups_pruned = rollups.prune(session, measured_at, rollup_settings)
    return Written(states=len(links) + len(endpoints), samples=len(links) + len(endpoints), forgotten=forgotten,
                   pruned=pruned, rolled_up=rolled_up, rollups_pruned=rollups_pruned)
