"""Monitoring room, probe agent: its own metrics, one set of families per step, rendered once for its /metrics page.

Names and labels are the monitoring contract's (Prometheus conventions: base units, ratios 0..1, `_total` only on
counters). A figure that could not be measured is left out rather than written as 0 (a link whose echoes were
all lost has no round trip), so that rules and dashboards see "absent", not a wrong number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from app.monitoring.exposition import Family

if TYPE_CHECKING:
    from app.monitoring.agent.endpoints import EndpointMeasurement
    from app.monitoring.agent.probe import LinkMeasurement

Labels = tuple[str, str]  # (link code, site code)


class ProbeCounters:
    """Echoes sent and lost per link since the agent started: the counters of /metrics."""

    def __init__(self) -> None:
        self.sent: dict[Labels, int] = {}
        self.lost: dict[Labels, int] = {}

    def add(self, links: Sequence[LinkMeasurement]) -> None:
        for link in links:
            key = (link.target.code, link.target.site_code)
            self.sent[key] = self.sent.get(key, 0) + link.sent
            self.lost[key] = self.lost.get(key, 0) + link.lost


def _gauge(name: str, help_text: str) -> Family:
    return Family(name, "gauge", help_text, [])


def families(links: Sequence[LinkMeasurement], endpoints: Sequence[EndpointMeasurement], counters: ProbeCounters,
             step_seconds: float) -> list[Family]:
    """The agent's families after a step (`counters` must already include it)."""
    up = _gauge("vcops_link_up", "1 when at least one echo of the step to the link's far end came back, else 0.")
    rtt = _gauge("vcops_link_rtt_seconds", "Median round trip of the step's echoes to the link's far end.")
    rtt_min = _gauge("vcops_link_rtt_min_seconds", "Shortest round trip of the step's echoes.")
    rtt_max = _gauge("vcops_link_rtt_max_seconds", "Longest round trip of the step's echoes.")
    loss = _gauge("vcops_link_packet_loss_ratio", "Share of the step's echoes that were lost (0..1).")
    jitter = _gauge("vcops_link_jitter_seconds",
                    "Mean absolute difference between consecutive round trips of the step's echoes.")
    for link in links:
        labels = {"link": link.target.code, "site": link.target.site_code}
        up.samples.append((labels, 1.0 if link.up else 0.0))
        loss.samples.append((labels, link.loss_ratio))
        for family, value in ((rtt, link.rtt_median), (rtt_min, link.rtt_min), (rtt_max, link.rtt_max),
                              (jitter, link.jitter)):
            if value is not None:
                family.samples.append((labels, value))
    # Counters of the links probed now (a link retired since the agent started drops out of the page).
    keys = list(dict.fromkeys((link.target.code, link.target.site_code) for link in links))
    sent = Family("vcops_link_probes_sent_total", "counter", "Echoes sent to the link's far end since the agent "
                  "started.", [({"link": code, "site": site}, float(counters.sent[(code, site)]))
                               for code, site in keys])
    lost = Family("vcops_link_probes_lost_total", "counter", "Echoes to the link's far end that were lost, since "
                  "the agent started.", [({"link": code, "site": site}, float(counters.lost[(code, site)]))
                                         for code, site in keys])

    e_up = _gauge("vcops_endpoint_up", "1 when the endpoint answers echoes or its management port, else 0.")
    registered = _gauge("vcops_endpoint_registered", "1 when the endpoint is registered with its SIP registrar.")
    in_call = _gauge("vcops_endpoint_in_call", "1 when the endpoint is in a call.")
    call_loss = _gauge("vcops_endpoint_call_packet_loss_ratio",
                       "Share of the current call's incoming media packets lost, as the endpoint reports (0..1).")
    call_jitter = _gauge("vcops_endpoint_call_jitter_seconds",
                         "Jitter of the current call's worst incoming media channel, as the endpoint reports.")
    for endpoint in endpoints:
        labels = {"endpoint": str(endpoint.target.endpoint_id), "site": endpoint.target.site_code}
        e_up.samples.append((labels, 1.0 if endpoint.up else 0.0))
        for family, value in ((registered, endpoint.registered), (in_call, endpoint.in_call)):
            if value is not None:
                family.samples.append((labels, 1.0 if value else 0.0))
        for family, figure in ((call_loss, endpoint.call_loss_ratio), (call_jitter, endpoint.call_jitter)):
            if figure is not None:
                family.samples.append((labels, figure))

    duration = _gauge("vcops_probe_step_duration_seconds", "Wall time of the agent's last step.")
    duration.samples.append(({}, step_seconds))
    targets = _gauge("vcops_probe_targets", "Targets the agent probed in its last step, by kind.")
    targets.samples += [({"kind": "link"}, float(len(links))), ({"kind": "endpoint"}, float(len(endpoints)))]
    return [up, rtt, rtt_min, rtt_max, loss, jitter, sent, lost, e_up, registered, in_call, call_loss, call_jitter,
            duration, targets]
