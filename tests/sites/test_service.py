"""The inventory's rules, without HTTP: the site tree, levels as data, links, maintenance, the audit log."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from app.auth.audit import AuditEntry
from app.errors import Conflict, Invalid, NotFound
from app.sites import equipment, maintenance, service, tree
from app.sites.models import Endpoint, Level, Link, LinkMedium, Site, Status


def site(session, code: str) -> Site:
    return session.scalar(sa.select(Site).where(Site.code == code))


def test_a_commune_under_a_district_belongs_to_the_district_and_the_province(session):
    commune = site(session, "TQ-CH-KB")
    district, province = site(session, "TQ-CH"), site(session, "TQ")
    assert commune.ancestor_ids == [province.id, district.id]
    level = service.level_by_code(session, "district")
    assert tree.ancestor_at_level(session, commune, level) == district
    assert commune.id in tree.subtree_ids(session, district)
    assert commune.id not in tree.subtree_ids(session, site(session, "TQ-NH"))


def test_grouping_by_district_puts_each_commune_under_its_own_district(session):
    communes = session.scalars(sa.select(Site).join(Site.level).where(Level.code == "commune")).all()
    groups = tree.group_by_ancestor(session, communes, service.level_by_code(session, "district"))
    assert len(groups) == 7
    assert {c.code for c in groups[site(session, "TQ-LB")]} == {"TQ-LB-LC", "TQ-LB-TL"}


def test_a_parent_inside_the_sites_own_subtree_is_refused_as_a_cycle(session):
    district = site(session, "TQ-HY")
    with pytest.raises(Invalid) as err:
        service.update_site(session, district, {"parent_id": site(session, "TQ-HY-TS").id})
    assert err.value.code == "cycle" and "parent_id" in err.value.fields
    with pytest.raises(Invalid):
        service.update_site(session, district, {"parent_id": district.id})


def test_a_parent_must_be_at_a_higher_level_but_may_skip_levels(session):
    province = site(session, "TQ")
    commune = service.create_site(session, {"code": "TQ-NEW", "name": "Xã Mới", "level": "commune",
                                            "parent_id": province.id})
    assert commune.parent == province  # a commune straight under the province, as since July 2025
    with pytest.raises(Invalid) as err:
        service.create_site(session, {"code": "TQ-BAD", "name": "Huyện X", "level": "district",
                                      "parent_id": commune.id})
    assert "higher level" in err.value.message


def test_moving_a_district_moves_its_communes_paths_too(session):
    service.ensure_levels(session, "three-level")
    region = service.create_site(session, {"code": "R1", "name": "Tỉnh khác", "level": "province"})
    district = site(session, "TQ-SD")
    service.update_site(session, district, {"parent_id": region.id})
    commune = site(session, "TQ-SD-TT")
    session.refresh(commune)
    assert commune.path == f"/{region.id}/{district.id}/{commune.id}/"
    assert commune.id in tree.subtree_ids(session, region)


def test_a_duplicate_site_code_is_a_conflict_naming_the_other_site(session):
    with pytest.raises(Conflict) as err:
        service.create_site(session, {"code": "TQ-NH", "name": "X", "level": "district",
                                      "parent_id": site(session, "TQ").id})
    assert "Huyện Na Hang" in err.value.message and err.value.fields == {"code": ["already used"]}


def test_an_unknown_level_is_refused_with_the_known_ones(session):
    with pytest.raises(Invalid) as err:
        service.create_site(session, {"code": "X1", "name": "X", "level": "ward"})
    assert "province, district, commune" in err.value.message


def test_a_district_with_active_communes_cannot_be_retired(session):
    with pytest.raises(Conflict) as err:
        service.retire_site(session, site(session, "TQ-YS"))
    assert "Xã Trung Môn" in err.value.message


def test_retiring_a_commune_retires_its_rooms_and_its_uplink(session):
    commune = site(session, "TQ-YS-MB")
    service.retire_site(session, commune)
    assert commune.status is Status.RETIRED
    assert all(e.status is Status.RETIRED for e in commune.endpoints)
    links = session.scalars(sa.select(Link).where(Link.site_a_id == commune.id)).all()
    assert links and all(link.status is Status.RETIRED for link in links)
    assert tree.uplink(session, commune) is None


def test_every_demo_site_below_the_province_has_an_uplink_to_its_parent(session):
    below = session.scalars(sa.select(Site).where(Site.parent_id.is_not(None))).all()
    assert len(below) == 7 + 14  # the demo's districts and communes
    for s in below:
        link = tree.uplink(session, s)
        assert link is not None and {link.site_a_id, link.site_b_id} == {s.id, s.parent_id}, s.code
        assert link.medium is LinkMedium.DEDICATED and link.status is Status.ACTIVE


def test_a_link_from_a_site_to_itself_is_refused(session):
    s = site(session, "TQ-NH")
    with pytest.raises(Invalid) as err:
        equipment.save_link(session, {"site_a_id": s.id, "site_b_id": s.id, "bandwidth_kbps": 1000})
    assert err.value.code == "same_site"


def test_a_site_cannot_have_two_rooms_with_the_same_name(session):
    s = site(session, "TQ")
    with pytest.raises(Conflict):
        equipment.save_endpoint(session, {"site_id": s.id, "room_name": "Phòng họp trực tuyến 1"})
    room = equipment.save_endpoint(session, {"site_id": s.id, "room_name": "Phòng họp số 3"})
    assert room in session.scalars(sa.select(Endpoint).where(Endpoint.site_id == s.id)).all()


def test_equipment_cannot_be_added_to_a_retired_or_missing_site(session):
    commune = site(session, "TQ-LB-TL")
    service.retire_site(session, commune)
    with pytest.raises(Invalid):
        equipment.save_endpoint(session, {"site_id": commune.id, "room_name": "P1"})
    with pytest.raises(NotFound):
        equipment.save_host(session, {"site_id": 999999, "name": "rt-x", "kind": "link_router"})


def test_a_maintenance_window_must_end_after_it_starts_and_give_a_reason(session):
    s = site(session, "TQ")
    start = dt.datetime(2027, 1, 4, 1, 0, tzinfo=dt.UTC)
    with pytest.raises(Invalid):
        maintenance.create_maintenance(session, "site", s.id, start, start, "nâng cấp", None)
    with pytest.raises(Invalid):
        maintenance.create_maintenance(session, "site", s.id, start, start + dt.timedelta(hours=1), "  ", None)
    window = maintenance.create_maintenance(session, "site", s.id, start, start + dt.timedelta(hours=2), "nâng cấp",
                                            None)
    assert window.target == s and window.starts_at == start


def test_every_change_is_in_the_audit_log_with_before_and_after(session):
    from app.auth.audit import Actor, reset_actor, set_actor

    token = set_actor(Actor(None, "tech@example.com"))
    try:
        district = site(session, "TQ-NH")
        service.update_site(session, district, {"name": "Huyện Na Hang (mới)"})
    finally:
        reset_actor(token)
    entry = session.scalars(sa.select(AuditEntry).where(AuditEntry.object_type == "Site",
                                                        AuditEntry.action == "update")
                            .order_by(AuditEntry.id.desc())).first()
    assert entry.actor == "tech@example.com" and entry.object_id == str(district.id)
    assert entry.before == {"name": "Huyện Na Hang"} and entry.after == {"name": "Huyện Na Hang (mới)"}


def test_the_two_level_plan_holds_communes_directly_under_the_province(fresh_app):
    from app.db import commit_scope
    from app.sites.demo import seed

    app = fresh_app("sqlite")
    with app.app_context(), commit_scope() as session:
        seed(session, "two-level")
        levels = [lv.code for lv in service.list_levels(session)]
        assert levels == ["province", "commune"]
        commune = site(session, "TQ-LB-LC")
        assert commune.parent.code == "TQ" and tree.uplink(session, commune).site_b.code == "TQ"
