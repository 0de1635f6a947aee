"""The inventory's pages, as a technician, a viewer and site staff use them (CSRF is off here; tested elsewhere)."""

from __future__ import annotations

import datetime as dt
import html
import re

import sqlalchemy as sa

from app.db import db
from app.sites import service
from app.sites.models import ContactRole, Endpoint, Link, MaintenanceWindow, Site, Status


def query(app, fn):
    """Run fn(session) in an app context of its own (never around a request, which would share it)."""
    with app.app_context():
        return fn(db.session)


def site_id(app, code: str) -> int:
    return query(app, lambda s: s.scalar(sa.select(Site.id).where(Site.code == code)))


def field_error(page: str, name: str) -> str:
    """The error shown right next to a form field, or '' when there is none."""
    found = re.search(rf'id="{re.escape(name)}-error">([^<]*)<', page)
    return html.unescape(found.group(1)) if found else ""


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def rows_of(response) -> str:
    """The list's table, without the filter form (whose choices name every parent site)."""
    page = text_of(response)
    return page[page.index("<table"):page.index("</table>")]


def listed_codes(response) -> list[str]:
    """The codes in the site list's first column, in order."""
    return re.findall(r'<tr class="row-\w+">\s*<td><a href="/sites/\d+">([^<]+)</a>', rows_of(response))


def site_form(**overrides):
    data = {"code": "TQ-LB-PY", "name": "Xã Phúc Yên", "level": "commune", "parent_id": "", "address": "",
            "latitude": "", "longitude": "", "status": "active", "notes": ""}
    data.update(overrides)
    return data


def test_technician_creates_a_site_with_contacts_and_sees_it_in_the_list_and_tree(app, login):
    client = login("technician")
    lam_binh = site_id(app, "TQ-LB")
    data = site_form(parent_id=str(lam_binh), latitude="22.43", longitude="105.23", **{
        "contacts-0-name": "Nguyễn Văn An", "contacts-0-role": "leader", "contacts-0-email": "an@example.com",
        "contacts-0-phone": "0912 345 678",
        "contacts-1-name": "Trần Thị Bình", "contacts-1-role": "technical", "contacts-1-email": "",
        "contacts-1-phone": "",
        "contacts-2-name": "", "contacts-2-role": "secretary", "contacts-2-email": "", "contacts-2-phone": ""})

    more_rows = client.post("/sites/new", data={**data, "add_contact": "1"})
    assert more_rows.status_code == 200
    assert 'name="contacts-3-name"' in more_rows.get_data(as_text=True)
    assert site_id(app, "TQ-LB-PY") is None  # adding a row saves nothing

    response = client.post("/sites/new", data=data)
    assert response.status_code == 302
    detail = text_of(client.get(response.headers["Location"]))
    assert "Xã Phúc Yên" in detail and "Nguyễn Văn An" in detail and "0912 345 678" in detail
    assert "Trần Thị Bình" in detail and "Huyện Lâm Bình" in detail  # the breadcrumb names its district
    contacts = query(app, lambda s: [(c.name, c.role) for c in s.get(Site, site_id(app, "TQ-LB-PY")).contacts])
    assert contacts == [("Nguyễn Văn An", ContactRole.LEADER), ("Trần Thị Bình", ContactRole.TECHNICAL)]

    assert "Xã Phúc Yên" in text_of(client.get("/sites?q=Phúc Yên"))
    tree = text_of(client.get(f"/sites/tree?within={lam_binh}")).split('<ul class="tree">', 1)[1]
    assert "TQ-LB-PY" in tree and "TQ-LB-LC" in tree and "TQ-NH" not in tree


def test_site_list_searches_filters_and_pages_keeping_the_filters(app, login, monkeypatch):
    client = login("viewer")
    assert listed_codes(client.get("/sites?q=tq-lb")) == ["TQ-LB", "TQ-LB-LC", "TQ-LB-TL"]  # case aside
    assert "Xã Lăng Can" in rows_of(client.get("/sites?q=Lăng Can"))
    assert listed_codes(client.get(f"/sites?within={site_id(app, 'TQ-NH')}")) == ["TQ-NH", "TQ-NH-NH", "TQ-NH-TT"]
    samples = listed_codes(client.get("/sites?sample=yes"))
    assert len(samples) == 14 and "TQ-CH-KB" in samples and "TQ-CH" not in samples
    districts = listed_codes(client.get("/sites?level=district&status=active"))
    assert len(districts) == 7 and "TQ-HY" in districts
    assert listed_codes(client.get("/sites?status=retired")) == []

    monkeypatch.setitem(app.config, "PAGE_SIZE", 5)
    page2 = client.get("/sites?level=commune&page=2").get_data(as_text=True)
    rows = re.findall(r'<tr class="row-', page2)
    assert len(rows) == 5
    assert 'rel="prev"' in page2
    next_link = re.search(r'href="([^"]+)" rel="next"', page2).group(1)
    assert "level=commune" in next_link and "page=3" in next_link
    page3 = client.get(html.unescape(next_link)).get_data(as_text=True)
    assert len(re.findall(r'<tr class="row-', page3)) == 4  # 14 sample communes: 5 + 5 + 4


def test_duplicate_site_code_is_shown_next_to_the_code_field_and_nothing_is_saved(app, login):
    client = login("technician")
    response = client.post("/sites/new", data=site_form(code="TQ-LB", name="Xã Trùng Mã", **{
        "contacts-0-name": "Lê Văn Cường", "contacts-0-role": "leader", "contacts-0-email": "",
        "contacts-0-phone": ""}))
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert field_error(page, "code") == "already used"
    assert "Huyện Lâm Bình" in text_of(response)  # the reason names the site that has the code
    assert 'value="Xã Trùng Mã"' in page and 'value="Lê Văn Cường"' in page  # the user's input is kept
    assert query(app, lambda s: s.scalar(sa.select(sa.func.count()).where(Site.name == "Xã Trùng Mã"))) == 0


def test_a_parent_that_would_make_a_cycle_is_refused_next_to_the_parent_field(app, login):
    client = login("technician")
    lam_binh, lang_can = site_id(app, "TQ-LB"), site_id(app, "TQ-LB-LC")
    province = site_id(app, "TQ")
    response = client.post(f"/sites/{lam_binh}/edit", data=site_form(
        code="TQ-LB", name="Huyện Lâm Bình", level="province", parent_id=str(lang_can)))
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "parent_id") == "would make a cycle"
    assert "cycle" in text_of(response)
    stored = query(app, lambda s: (s.get(Site, lam_binh).parent_id, s.get(Site, lam_binh).level.code))
    assert stored == (province, "district")


def test_a_link_whose_two_ends_are_the_same_site_is_refused(app, login):
    client = login("technician")
    na_hang = site_id(app, "TQ-NH")
    links_before = query(app, lambda s: s.scalar(sa.select(sa.func.count()).select_from(Link)))
    response = client.post("/links/new", data={
        "code": "", "site_a_id": str(na_hang), "address_a": "198.19.0.1", "site_b_id": str(na_hang),
        "address_b": "198.19.0.2", "provider": "Viettel", "medium": "internet", "bandwidth_kbps": "10000",
        "status": "active"})
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "site_b_id") == "same site as site A"
    assert query(app, lambda s: s.scalar(sa.select(sa.func.count()).select_from(Link))) == links_before


def test_retiring_a_site_with_active_children_is_refused_with_the_reason(app, login):
    client = login("technician")
    chiem_hoa = site_id(app, "TQ-CH")
    confirm = client.get(f"/sites/{chiem_hoa}/retire")
    assert confirm.status_code == 200 and 'method="post"' in confirm.get_data(as_text=True)

    response = client.post(f"/sites/{chiem_hoa}/retire")
    assert response.status_code == 409
    page = text_of(response)
    assert "still has active sites under it" in page and "Xã Kim Bình" in page
    assert query(app, lambda s: s.get(Site, chiem_hoa).status) is Status.ACTIVE

    kim_binh = site_id(app, "TQ-CH-KB")
    assert client.post(f"/sites/{kim_binh}/retire").status_code == 302
    assert "status-retired" in text_of(client.get(f"/sites/{kim_binh}"))
    assert "Xã Kim Bình" in text_of(client.get("/sites?status=retired"))


def test_technician_can_retire_an_endpoint(app, login):
    client = login("technician")
    endpoint = query(app, lambda s: s.scalar(sa.select(Endpoint.id).join(Endpoint.site).where(Site.code == "TQ-HY")))
    assert client.get(f"/endpoints/{endpoint}/retire").status_code == 200
    response = client.post(f"/endpoints/{endpoint}/retire")
    assert response.status_code == 302
    assert query(app, lambda s: s.get(Endpoint, endpoint).status) is Status.RETIRED
    detail = client.get(f"/endpoints/{endpoint}").get_data(as_text=True)
    assert "status-retired" in detail and f"/endpoints/{endpoint}/retire" not in detail
    listed = client.get("/endpoints?status=retired").get_data(as_text=True)
    assert f"/endpoints/{endpoint}\"" in listed and "status-retired" in listed


def test_maintenance_typed_at_eight_local_is_stored_at_one_utc_and_shown_at_eight(app, login):
    client = login("technician")
    bridge = query(app, lambda s: s.scalar(sa.text("SELECT id FROM bridges WHERE name = 'MCU-TQ-01'")))
    refused = client.post(f"/maintenance/new?target=bridge:{bridge}", data={
        "target": f"bridge:{bridge}", "starts_at": "2031-03-02T10:00", "ends_at": "2031-03-02T08:00",
        "reason": "Nâng cấp phần mềm MCU"})
    assert refused.status_code == 422
    assert field_error(refused.get_data(as_text=True), "ends_at") == "must be after the start"

    response = client.post(f"/maintenance/new?target=bridge:{bridge}", data={
        "target": f"bridge:{bridge}", "starts_at": "2031-03-02T08:00", "ends_at": "2031-03-02T10:30",
        "reason": "Nâng cấp phần mềm MCU"})
    assert response.status_code == 302
    window = query(app, lambda s: s.scalar(sa.select(MaintenanceWindow).where(MaintenanceWindow.bridge_id == bridge)))
    assert window.starts_at == dt.datetime(2031, 3, 2, 1, 0, tzinfo=dt.UTC)
    assert window.ends_at == dt.datetime(2031, 3, 2, 3, 30, tzinfo=dt.UTC)

    listed = text_of(client.get("/maintenance?when=upcoming&q=MCU"))
    row = next(r for r in listed.split("<tr>") if "Nâng cấp phần mềm MCU" in r)
    assert "08:00" in row and "10:30" in row and "01:00" not in row
    assert "08:00" in text_of(client.get(f"/bridges/{bridge}"))

    assert client.post(f"/maintenance/{window.id}/delete").status_code == 302
    assert query(app, lambda s: s.get(MaintenanceWindow, window.id)) is None


def test_viewer_sees_the_lists_but_may_not_create(app, login):
    client = login("viewer")
    for path in ("/sites", "/sites/tree", "/endpoints", "/bridges", "/hosts", "/links", "/maintenance"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert "/new\"" not in page.get_data(as_text=True), path  # no create buttons they could not use
    assert client.get("/sites/new").status_code == 403
    assert client.post("/sites/new", data=site_form()).status_code == 403
    assert client.get("/maintenance/new").status_code == 403
    assert site_id(app, "TQ-LB-PY") is None


def test_site_staff_see_only_their_own_site_on_the_home_page(app, login):
    client = login("site_staff")
    for path in ("/sites", "/sites/tree", "/endpoints", "/links", "/maintenance", f"/sites/{site_id(app, 'TQ')}"):
        assert client.get(path).status_code == 403, path
    home = text_of(client.get("/"))
    assert "Phường Minh Xuân" in home and "vanphong.tqtpmx@example.com" in home
    assert "Huyện Lâm Bình" not in home and "/sites?" not in home


def test_group_by_ancestor_lists_communes_under_their_district_in_either_level_plan(app, login):
    client = login("operator")
    by_district = client.get("/sites/tree?group=district").get_data(as_text=True)
    sections = {m.group(1): m.group(0) for m in re.finditer(
        r'<section class="group">\s*<h2 id="group-([^"]+)">.*?</section>', by_district, re.S)}
    assert "Xã Lăng Can" in sections["TQ-LB"] and "Xã Thượng Lâm" in sections["TQ-LB"]
    assert "Xã Kim Bình" not in sections["TQ-LB"] and "Xã Kim Bình" in sections["TQ-CH"]

    # Today's two-level shape beside it: a province whose communes hang directly under it.
    def two_level_province(session):
        province = service.create_site(session, {"code": "TQ2", "name": "Tỉnh Tuyên Quang (2025)",
                                                 "level": "province"})
        for code, name in (("TQ2-MX", "Phường Minh Xuân mới"), ("TQ2-LC", "Xã Lăng Can mới")):
            service.create_site(session, {"code": code, "name": name, "level": "commune",
                                          "parent_id": province.id})
        session.commit()

    query(app, two_level_province)
    by_province = client.get("/sites/tree?group=province").get_data(as_text=True)
    sections = {m.group(1): m.group(0) for m in re.finditer(
        r'<section class="group">\s*<h2 id="group-([^"]+)">.*?</section>', by_province, re.S)}
    assert "Xã Lăng Can mới" in sections["TQ2"] and "Xã Lăng Can mới" not in sections["TQ"]
    assert "Xã Lăng Can" in sections["TQ"]
    by_district = client.get("/sites/tree?group=district").get_data(as_text=True)
    none_section = re.search(r'<h2 id="group-none">.*?</section>', by_district, re.S).group(0)
    assert "Xã Lăng Can mới" in none_section and "Xã Thượng Lâm" not in none_section


def test_technician_reaches_every_inventory_page(app, login):
    client = login("technician")
    ids = query(app, lambda s: {
        "site": site_id(app, "TQ"),
        "endpoint": s.scalar(sa.select(sa.func.min(Endpoint.id))),
        "bridge": s.scalar(sa.text("SELECT min(id) FROM bridges")),
        "host": s.scalar(sa.text("SELECT min(id) FROM managed_hosts")),
        "link": s.scalar(sa.select(sa.func.min(Link.id))),
    })
    paths = ["/", "/sites/tree?group=commune", "/sites/new", "/maintenance/new", "/maintenance?when=past"]
    for kind, plural in (("site", "sites"), ("endpoint", "endpoints"), ("bridge", "bridges"), ("host", "hosts"),
                         ("link", "links")):
        paths += [f"/{plural}", f"/{plural}/new", f"/{plural}/{ids[kind]}", f"/{plural}/{ids[kind]}/edit",
                  f"/{plural}/{ids[kind]}/retire", f"/maintenance/new?target={kind}:{ids[kind]}"
                  if kind != "host" else "/hosts?kind=link_router"]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:2000])
    assert client.get("/sites/999999").status_code == 404
