"""Which link is a site's uplink, after its dedicated line is replaced or while it is down: the site page,
the inventory's rule and monitoring's topology name the same link (booking too: tests/meetings/test_booking.py)."""

from __future__ import annotations

import html
import re

import sqlalchemy as sa

from app.db import db
from app.monitoring.topology import topology
from app.sites import tree
from app.sites.models import Site

from .lines import Lines, fail_over, replace_dedicated_line


def uplink_on_page(client, site_id: int) -> list[str]:
    """The codes of the links the site's page tags as its uplink."""
    page = html.unescape(client.get(f"/sites/{site_id}").get_data(as_text=True))
    return re.findall(r'<a href="/links/\d+">([^<]+)</a> <span class="tag">uplink</span>', page)


def changed(app, change, code: str, *args) -> tuple[int, Lines]:
    with app.app_context():
        session = db.session
        lines = change(session, code, *args)
        site_id = session.scalar(sa.select(Site.id).where(Site.code == code))
        session.commit()
        return site_id, lines


def test_after_a_districts_dedicated_line_is_replaced_its_page_and_monitoring_name_the_new_line(app, login, session):
    site_id, lines = changed(app, replace_dedicated_line, "TQ-CH")
    new, backup = lines.replacement.code, lines.backup.code
    assert uplink_on_page(login("technician"), site_id) == [new]
    assert tree.uplink(session, session.get(Site, site_id)).code == new
    assert [link.code for link in tree.uplinks(session, session.get(Site, site_id))] == [new, backup]
    topo = topology(session)
    assert topo.uplink_of_site["TQ-CH"] == new
    roles = {t.code: t.backup_of for t in topo.links if t.site_code == "TQ-CH"}
    assert roles == {new: "", backup: new}  # the retired line is not probed at all


def test_a_failed_over_site_shows_its_backup_as_its_uplink_as_monitoring_does(app, login, session):
    site_id, lines = changed(app, fail_over, "TQ-NH", 4000)
    backup = lines.backup.code
    assert uplink_on_page(login("technician"), site_id) == [backup]
    assert tree.uplink(session, session.get(Site, site_id)).code == backup
    topo = topology(session)
    assert topo.uplink_of_site["TQ-NH"] == backup
    assert {t.code: t.backup_of for t in topo.links if t.site_code == "TQ-NH"} == {backup: ""}
