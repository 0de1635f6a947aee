"""Monitoring room: typed models of what the probe agents measured and of the incidents Alertmanager reported.

Each agent writes the latest state of every target it probes (one row per link or endpoint, replaced every
step) and a sample per step into the history tables, which it prunes to PROBE_HISTORY_MINUTES as it goes:
the board reads both, whichever agent measured what. Prometheus keeps the long history.
Times are UTC; durations are seconds (floats), ratios are 0..1, as in the metrics.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.db import Base, stored_enum, utcnow

if TYPE_CHECKING:
    from app.auth.models import User
    from app.sites.models import Endpoint, Link


class _LinkMeasure:
    """The figures of one step of echoes to a link's far end; None where no echo came back."""

    sent: so.Mapped[int] = so.mapped_column(default=0)
    lost: so.Mapped[int] = so.mapped_column(default=0)
    rtt_median: so.Mapped[float | None]
    rtt_min: so.Mapped[float | None]
    rtt_max: so.Mapped[float | None]
    jitter: so.Mapped[float | None]  # mean absolute difference of consecutive round trips

    @property
    def loss_ratio(self) -> float | None:
        return self.lost / self.sent if self.sent else None


class LinkState(_LinkMeasure, Base):
    """The latest step measured for a link (one row per link)."""

    __tablename__ = "link_states"

    link_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("links.id", ondelete="CASCADE"), primary_key=True)
    agent: so.Mapped[str] = so.mapped_column(sa.String(100), default="")  # which probe agent measured it
    up: so.Mapped[bool]
    measured_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    changed_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)  # last change between up and down

    link: so.Mapped[Link] = so.relationship("Link")


class LinkSample(_LinkMeasure, Base):
    """One step of a link's history; pruned after PROBE_HISTORY_MINUTES."""

    __tablename__ = "link_samples"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    link_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("links.id", ondelete="CASCADE"))
    up: so.Mapped[bool]
    measured_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    __table_args__ = (sa.Index("ix_link_samples_link_time", "link_id", "measured_at"),
                      sa.Index("ix_link_samples_time", "measured_at"))


class _EndpointMeasure:
    """What one step found of an endpoint; None where it could not be told (e.g. no management access)."""

    icmp_up: so.Mapped[bool] = so.mapped_column(default=False)
    rtt: so.Mapped[float | None]
    sip_port_open: so.Mapped[bool | None]
    mgmt_port_open: so.Mapped[bool | None]
    registered: so.Mapped[bool | None]
    in_call: so.Mapped[bool | None]
    call_loss_ratio: so.Mapped[float | None]
    call_jitter: so.Mapped[float | None]
    error: so.Mapped[str] = so.mapped_column(sa.String(500), default="")  # why the management read failed


class EndpointState(_EndpointMeasure, Base):
    """The latest step measured for an endpoint (one row per endpoint)."""

    __tablename__ = "endpoint_states"

    endpoint_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("endpoints.id", ondelete="CASCADE"),
                                                   primary_key=True)
    agent: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    up: so.Mapped[bool]  # reachable: answers echoes or its management port
    measured_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    changed_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    endpoint: so.Mapped[Endpoint] = so.relationship("Endpoint")


class EndpointSample(_EndpointMeasure, Base):
    """One step of an endpoint's history; pruned after PROBE_HISTORY_MINUTES."""

    __tablename__ = "endpoint_samples"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    endpoint_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("endpoints.id", ondelete="CASCADE"))
    up: so.Mapped[bool]
    measured_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)

    __table_args__ = (sa.Index("ix_endpoint_samples_endpoint_time", "endpoint_id", "measured_at"),
                      sa.Index("ix_endpoint_samples_time", "measured_at"))


class IncidentStatus(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Incident(Base):
    """An alert as Alertmanager delivered it: one row per alert (fingerprint) and firing period (starts_at)."""

    __tablename__ = "incidents"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    fingerprint: so.Mapped[str] = so.mapped_column(sa.String(64))
    alertname: so.Mapped[str] = so.mapped_column(sa.String(100), index=True)
    status: so.Mapped[IncidentStatus] = so.mapped_column(
        stored_enum(IncidentStatus, "incident_status"), default=IncidentStatus.FIRING)
    severity: so.Mapped[str] = so.mapped_column(sa.String(20), default="")
    site_code: so.Mapped[str] = so.mapped_column(sa.String(32), default="", index=True)
    link_code: so.Mapped[str] = so.mapped_column(sa.String(64), default="")
    summary: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    labels: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)
    annotations: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)
    starts_at: so.Mapped[dt.datetime]
    ends_at: so.Mapped[dt.datetime | None]
    last_notified_at: so.Mapped[dt.datetime] = so.mapped_column(default=utcnow)
    acknowledged_by_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    acknowledged_at: so.Mapped[dt.datetime | None]
    ack_note: so.Mapped[str] = so.mapped_column(sa.String(500), default="")

    acknowledged_by: so.Mapped[User | None] = so.relationship("User")

    __table_args__ = (sa.UniqueConstraint("fingerprint", "starts_at", name="one_row_per_firing"),
                      sa.Index("ix_incidents_status_starts", "status", "starts_at"))


# ---------------------------------------------------------------- rollups: a year of probe history for the reports

# Buckets of the round-trip histogram (app.monitoring.rollups.RTT_BOUNDS says where each one ends): a fixed
# log scale, so that rows of any hour, day, link or province add up column by column.
RTT_BUCKETS = 24


class _Rollup:
    """What the steps of one target within one bucket (an hour, or a local day) added up to. The key is (target,
    bucket_start): a province's month reads its targets' ranges; the index on bucket_start serves the pruning
    and the country's reports, which read a span of time across every target.

    A step adds 1 to steps_up or steps_down; its echoes to sent and lost; its median round trip (when an echo came
    back) to rtt_sum, rtt_count and one of the histogram's columns rtt_b00..rtt_b23; its jitter to jitter_sum and
    jitter_count. Sums, not means, so that buckets add up exactly into months and subtrees.
    """

    bucket_start: so.Mapped[dt.datetime] = so.mapped_column(primary_key=True)  # UTC
    steps_up: so.Mapped[int] = so.mapped_column(default=0)
    steps_down: so.Mapped[int] = so.mapped_column(default=0)
    sent: so.Mapped[int] = so.mapped_column(default=0)
    lost: so.Mapped[int] = so.mapped_column(default=0)
    rtt_sum: so.Mapped[float] = so.mapped_column(default=0.0)  # seconds
    rtt_count: so.Mapped[int] = so.mapped_column(default=0)
    jitter_sum: so.Mapped[float] = so.mapped_column(default=0.0)  # seconds
    jitter_count: so.Mapped[int] = so.mapped_column(default=0)


for _bucket in range(RTT_BUCKETS):
    # Declared in a loop so that the count above is the one place that says how many there are.
    setattr(_Rollup, f"rtt_b{_bucket:02d}", so.mapped_column(sa.Integer, nullable=False, default=0))
del _bucket


class LinkRollupHourly(_Rollup, Base):
    """A link's steps of one UTC hour; pruned after ROLLUP_HOURLY_DAYS."""

    __tablename__ = "link_rollups_hourly"
    __table_args__ = (sa.Index("ix_link_rollups_hourly_bucket", "bucket_start"),)

    link_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("links.id", ondelete="CASCADE"), primary_key=True)


class LinkRollupDaily(_Rollup, Base):
    """A link's steps of one local day (bucket_start: the local midnight, in UTC); pruned after
    ROLLUP_DAILY_MONTHS."""

    __tablename__ = "link_rollups_daily"
    __table_args__ = (sa.Index("ix_link_rollups_daily_bucket", "bucket_start"),)

    link_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("links.id", ondelete="CASCADE"), primary_key=True)


class EndpointRollupHourly(_Rollup, Base):
    """An endpoint's steps of one UTC hour; pruned after ROLLUP_HOURLY_DAYS."""

    __tablename__ = "endpoint_rollups_hourly"
    __table_args__ = (sa.Index("ix_endpoint_rollups_hourly_bucket", "bucket_start"),)

    endpoint_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("endpoints.id", ondelete="CASCADE"),
                                                   primary_key=True)


class EndpointRollupDaily(_Rollup, Base):
    """An endpoint's steps of one local day; pruned after ROLLUP_DAILY_MONTHS."""

    __tablename__ = "endpoint_rollups_daily"
    __table_args__ = (sa.Index("ix_endpoint_rollups_daily_bucket", "bucket_start"),)

    endpoint_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("endpoints.id", ondelete="CASCADE"),
                                                   primary_key=True)
