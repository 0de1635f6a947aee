"""Small inventories for tests and benchmarks that need one site and their own hosts, not the demo province."""

from __future__ import annotations

import sqlalchemy.orm as so

from app.sites.models import Level, Site


def province_site(session: so.Session, name: str = "UBND tỉnh Tuyên Quang", code: str = "TQ") -> Site:
    """A province level and one site at it (the root of its tree), flushed."""
    level = Level(code="province", name="Tỉnh", rank=1)
    session.add(level)
    session.flush()
    site = Site(code=code, name=name, level_id=level.id)
    session.add(site)
    session.flush()
    site.path = f"/{site.id}/"
    return site
