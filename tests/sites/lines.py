"""Changes to a site's links that decide which one is its uplink, shared by the sites' and the booking tests."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.sites import equipment, tree
from app.sites.models import Link, LinkMedium, Site, Status


@dataclass(frozen=True)
class Lines:
    dedicated: Link  # the site's dedicated line: replaced (retired), or down (not active)
    backup: Link  # the 4G backup, older than any replacement
    replacement: Link | None = None  # the new dedicated line, when the old one was replaced


def _site(session: so.Session, code: str) -> Site:
    site = session.scalar(sa.select(Site).where(Site.code == code))
    assert site is not None, code
    return site


def _add(session: so.Session, site: Site, code: str, medium: LinkMedium, kbps: int, n: int) -> Link:
    return equipment.save_link(session, {
        "code": code, "site_a_id": site.id, "address_a": f"198.51.100.{2 * n}", "site_b_id": site.parent_id,
        "address_b": f"198.51.100.{2 * n + 1}", "provider": "Viettel", "medium": medium, "bandwidth_kbps": kbps,
        "status": Status.ACTIVE})


def _backed_up(session: so.Session, code: str, backup_kbps: int) -> tuple[Site, Link, Link]:
    site = _site(session, code)
    dedicated = tree.uplink(session, site)
    assert dedicated is not None and dedicated.medium is LinkMedium.DEDICATED
    backup = _add(session, site, f"{code}-4G", LinkMedium.MOBILE_BACKUP, backup_kbps, 1)
    return site, dedicated, backup


def replace_dedicated_line(session: so.Session, code: str, backup_kbps: int = 4000) -> Lines:
    """The site gets a 4G backup; later its dedicated line is retired and a new one laid (a higher id than the
    backup's)."""
    site, dedicated, backup = _backed_up(session, code, backup_kbps)
    equipment.retire(session, dedicated)
    replacement = _add(session, site, f"{code}-TSL2", LinkMedium.DEDICATED, 30000, 2)
    assert dedicated.id < backup.id < replacement.id
    return Lines(dedicated, backup, replacement)


def fail_over(session: so.Session, code: str, backup_kbps: int) -> Lines:
    """The site has a 4G backup and its dedicated line is not active (planned again while it is repaired)."""
    _, dedicated, backup = _backed_up(session, code, backup_kbps)
    dedicated.status = Status.PLANNED
    session.flush()
    return Lines(dedicated, backup)
