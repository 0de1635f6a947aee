"""The agents' /metrics: what Prometheus reads back from a page, how it is served, and that scrapes see whole steps."""

from __future__ import annotations

import gzip
import http.client
import math
import socket
import threading
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.monitoring.exposition import CONTENT_TYPE, Family, MetricsPage, Server, accepts_gzip, render, serve


def _families(body: bytes) -> dict[str, object]:
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def _get(server: Server, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture
def page() -> MetricsPage:
    return MetricsPage()


@pytest.fixture
def server(page: MetricsPage) -> Iterator[Server]:
    with serve(page, "127.0.0.1:0") as running:
        yield running


def _links(step: int, count: int = 50) -> list[Family]:
    """A step of the agent's link families; every value is the step number, so a page shows which step it is."""
    labels = [{"link": f"TQ-L{i:03d}", "site": f"TQ-S{i:03d}"} for i in range(count)]
    return [
        Family("vcops_link_up", "gauge", "1 when the link answered.", [(lb, float(step)) for lb in labels]),
        Family("vcops_link_probes_sent_total", "counter", "Echoes sent.", [(lb, float(step)) for lb in labels]),
    ]


def test_prometheus_reads_back_names_labels_and_values_as_written():
    awkward = 'Xã "Thượng Lâm"\\Lâm Bình\nmới'  # quotes, a backslash, a line feed, Vietnamese
    families = [
        Family("vcops_link_up", "gauge", "1 when the link answered at least one echo in the step.",
               [({"link": "TQ-LB-TL", "site": awkward}, 1), ({"link": "TQ-LB", "site": "TQ-LB"}, 0.0)]),
        Family("vcops_link_rtt_seconds", "gauge", 'Median round trip; "seconds" \\ not ms\nper step.',
               [({"link": "a", "site": "s"}, 0.000012), ({"link": "b", "site": "s"}, math.nan),
                ({"link": "c", "site": "s"}, math.inf), ({"link": "d", "site": "s"}, -math.inf)]),
        Family("vcops_link_probes_sent_total", "counter", "Echoes sent since the agent started.",
               [({"link": "a", "site": "s"}, 12345678901234)]),
        Family("vcops_link_info", "info", "One per active link.", [({"link": "a", "backup_of": ""}, 1)]),
        Family("vcops_probe_step_duration_seconds", "gauge", "Wall time of the last step.", [({}, 21.5)]),
        Family("vcops_probe_nothing_yet", "gauge", "A family with no samples yet.", []),
    ]
    body = render(families)

    # The escapes of the format, byte for byte.
    assert 'vcops_link_up{link="TQ-LB-TL",site="Xã \\"Thượng Lâm\\"\\\\Lâm Bình\\nmới"} 1.0\n' in body.decode()
    assert '# HELP vcops_link_rtt_seconds Median round trip; "seconds" \\\\ not ms\\nper step.\n' in body.decode()
    assert body.endswith(b"\n")

    parsed = _families(body)
    up = parsed["vcops_link_up"]
    assert up.type == "gauge"
    assert up.documentation == "1 when the link answered at least one echo in the step."
    assert [(s.labels, s.value) for s in up.samples] == [
        ({"link": "TQ-LB-TL", "site": awkward}, 1.0), ({"link": "TQ-LB", "site": "TQ-LB"}, 0.0)]
    rtt = parsed["vcops_link_rtt_seconds"]
    assert rtt.documentation == 'Median round trip; "seconds" \\ not ms\nper step.'
    values = {s.labels["link"]: s.value for s in rtt.samples}
    assert values["a"] == 0.000012 and math.isnan(values["b"])
    assert values["c"] == math.inf and values["d"] == -math.inf
    sent = parsed["vcops_link_probes_sent"]  # the parser names a counter family without its _total
    assert sent.type == "counter"
    assert [(s.name, s.value) for s in sent.samples] == [("vcops_link_probes_sent_total", 12345678901234.0)]
    assert parsed["vcops_link_info"].type == "gauge"
    assert parsed["vcops_link_info"].samples[0].labels == {"link": "a", "backup_of": ""}
    assert parsed["vcops_probe_step_duration_seconds"].samples[0].value == 21.5
    assert parsed["vcops_probe_nothing_yet"].samples == []


@pytest.mark.parametrize(("families", "problem"), [
    ([Family("vcops_link_up", "gauge", "", [({"link-code": "a"}, 1)])], "invalid label name 'link-code'"),
    ([Family("vcops_link_up", "gauge", "", [({"__name__": "a"}, 1)])], "invalid label name '__name__'"),
    ([Family("vcops_x", "gauge", "", []), Family("vcops_x", "gauge", "", [])], "vcops_x appears twice"),
])
def test_a_page_prometheus_would_refuse_is_refused_when_rendered_naming_the_problem(families, problem):
    with pytest.raises(ValueError, match=problem):
        render(families)


def test_a_family_with_a_bad_name_or_type_is_refused():
    with pytest.raises(ValueError, match="invalid metric name 'vcops-link-up'"):
        Family("vcops-link-up", "gauge", "", [])
    with pytest.raises(ValueError, match="unknown type 'summary'"):
        Family("vcops_link_up", "summary", "", [])


def test_prometheus_gets_the_page_gzipped_when_it_asks_and_plain_otherwise(page, server):
    body = render(_links(1))
    page.update(body)

    status, headers, data = _get(server, "/metrics", {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["content-type"] == CONTENT_TYPE
    assert headers["content-encoding"] == "gzip"
    assert len(data) < len(body) / 3
    assert gzip.decompress(data) == body

    for refusing in (None, "identity", "gzip;q=0", "br, *;q=0"):
        status, headers, data = _get(server, "/metrics", {"Accept-Encoding": refusing} if refusing else None)
        assert status == 200
        assert "content-encoding" not in headers, refusing
        assert data == body
    # Prometheus' own header
    assert accepts_gzip("gzip") and accepts_gzip("deflate, *") and accepts_gzip("br;q=1.0, GZIP;q=0.5")


def test_health_check_and_unknown_paths(page, server):
    assert _get(server, "/healthz")[::2] == (200, b"ok\n")
    status, _, data = _get(server, "/favicon.ico")
    assert status == 404 and b"/metrics" in data


def test_a_stuck_step_loop_fails_the_health_check_while_scrapes_keep_the_last_page():
    page = MetricsPage(render(_links(1)), stale_after=0.2)
    with serve(page, "127.0.0.1:0") as server:
        assert _get(server, "/healthz")[0] == 200
        threading.Event().wait(0.4)
        status, _, data = _get(server, "/healthz")
        assert status == 503 and data.startswith(b"stale")
        assert _get(server, "/metrics")[0] == 200
        page.update(render(_links(2)))
        assert _get(server, "/healthz")[0] == 200


def test_scrapes_see_the_last_rendered_step_not_the_agents_changing_data(page, server):
    families = _links(1)
    page.update(render(families))
    # The agent goes on measuring: its data changes, but until the step ends the page does not.
    for family in families:
        family.samples = [(labels, 99.0) for labels, _ in family.samples]
    first = _get(server, "/metrics", {"Accept-Encoding": "gzip"})[2]
    second = _get(server, "/metrics", {"Accept-Encoding": "gzip"})[2]
    assert first == second  # the same bytes: served, not made again
    assert {s.value for s in _families(gzip.decompress(first))["vcops_link_up"].samples} == {1.0}

    page.update(render(families))
    assert {s.value for s in _families(_get(server, "/metrics")[2])["vcops_link_up"].samples} == {99.0}


def test_every_scrape_during_updates_sees_one_whole_step(page, server):
    pages = [render(_links(step, count=400)) for step in range(1, 6)]
    page.update(pages[0])
    seen: list[set[float]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def scrape() -> None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=5)  # kept alive, as Prometheus does
        try:
            while not stop.is_set():
                conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
                data = gzip.decompress(conn.getresponse().read())
                parsed = _families(data)
                seen.append({s.value for f in parsed.values() for s in f.samples})
        except BaseException as exc:  # reported below; a thread's exception is otherwise lost
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=scrape) for _ in range(3)]
    for thread in threads:
        thread.start()
    for body in pages * 4:
        page.update(body)
        threading.Event().wait(0.01)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert len(seen) > 10
    assert all(len(values) == 1 for values in seen), "a scrape mixed two steps"
    assert len({v for values in seen for v in values}) > 1  # the scrapes did follow the steps


def test_the_server_reports_its_port_and_frees_it_when_closed(page):
    server = serve(page, "127.0.0.1:0")
    port = server.port
    assert port > 0 and server.url == f"http://127.0.0.1:{port}"
    assert _get(server, "/healthz")[0] == 200
    server.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    with serve(page, f"127.0.0.1:{port}") as again:  # free to listen on once more
        assert _get(again, "/healthz")[0] == 200


def test_the_server_listens_on_ipv6(page):
    with serve(page, "[::1]:0") as server:
        assert server.url == f"http://[::1]:{server.port}"
        assert _get(server, "/healthz")[0] == 200


@pytest.mark.parametrize("listen", ["9561", ":9561", "[]:9561", "127.0.0.1:", "127.0.0.1:port", "127.0.0.1:70000"])
def test_a_bad_listen_address_is_named(page, listen):
    with pytest.raises(ValueError, match="listen address must be host:port"):
        serve(page, listen)


def test_a_taken_port_is_named(page):
    with serve(page, "127.0.0.1:0") as first, pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{first.port}"):
        serve(page, f"127.0.0.1:{first.port}")
