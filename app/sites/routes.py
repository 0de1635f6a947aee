"""Inventory pages: the home page, sites and their tree, endpoints, bridges, hosts, links, maintenance windows.

Thin views: parse the query or the form, call the sites' services (app.sites.service, .equipment,
.maintenance) or read through app.sites.queries and app.sites.tree, render. A service refusal (DomainError) is
rolled back and shown next to the form's fields, with the user's input and the error's status (409/422).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms.fields.choices import SelectChoice

from app.auth.models import Role, User
from app.auth.permissions import role_can
from app.config import local_zone
from app.db import db
from app.errors import DomainError
from app.sites import equipment, maintenance, queries, service, tree
from app.sites import scope as scopes
from app.sites.forms import (
    CHOICE_LABELS,
    BridgeForm,
    EndpointForm,
    HostForm,
    InventoryForm,
    LinkForm,
    MaintenanceForm,
    SiteForm,
)
from app.sites.models import (
    Bridge,
    Endpoint,
    EndpointKind,
    HostKind,
    Link,
    LinkMedium,
    MaintenanceWindow,
    ManagedHost,
    Site,
    Status,
)
from app.sites.scope import request_scope
from app.web.access import login_required_only, require
from app.web.pagination import paginate_request

bp = Blueprint("sites", __name__)


@bp.app_template_filter("choice_label")
def choice_label(value: Any) -> str:
    """The translated label of a stored choice (status, kind, medium, contact role)."""
    label = CHOICE_LABELS.get(value)
    return str(label) if label is not None else str(value or "")


# ---------------------------------------------------------------- shared by the views below

def _choice_arg(name: str, choices: type[enum.Enum] | tuple[str, ...]) -> str:
    """A filter's value if it is one of the choices, else no filter (a hand-edited address is no error)."""
    value = request.args.get(name, "")
    allowed = {m.value for m in choices} if isinstance(choices, type) else set(choices)
    return value if value in allowed else ""


def _show_refusal(error: DomainError, form: FlaskForm, template: str, aliases: dict[str, str] | None = None,
                  **context: Any) -> ResponseReturnValue:
    """Roll back what the service began, put its reasons next to the fields, and show the form again."""
    db.session.rollback()
    for name, messages in error.fields.items():
        field = form._fields.get((aliases or {}).get(name, name))
        if field is None:
            form.form_errors.append(f"{name}: {'; '.join(map(str, messages))}")
        else:
            field.errors = [*field.errors, *map(str, messages)]
    form.form_errors.insert(0, error.message)
    return render_template(template, form=form, **context), error.status


def _not_valid(form: FlaskForm, template: str, **context: Any) -> ResponseReturnValue:
    # A submitted form with errors is a 422; the first showing of a form is a 200.
    status = 422 if request.method == "POST" else 200
    return render_template(template, form=form, **context), status


def _confirm(title: str, message: str, button: str, cancel: str, error: DomainError | None = None,
             details: list[str] | None = None, details_title: str = "") -> ResponseReturnValue:
    html = render_template("sites/confirm.html", title=title, message=message, button=button, cancel=cancel,
                           error=error.message if error else None, details=details or [],
                           details_title=details_title)
    return (html, error.status) if error else html


def _detail_url(kind: str, obj: Any) -> str:
    return url_for(f"sites.{kind}_detail", **{f"{kind}_id": obj.id})


def _visible(model: type[Any], object_id: Any, message: str) -> Any:
    """The object, or 404 when it does not exist or lies outside the user's scope."""
    return scopes.get_visible(db.session, request_scope(), model, object_id, message)


def _changeable(model: type[Any], object_id: Any, message: str) -> Any:
    """The object, 404 as above, or 403 naming the scope when the user sees it but may not change it."""
    return scopes.get_changeable(db.session, request_scope(), model, object_id, message)


# ---------------------------------------------------------------- home

@bp.get("/")
@login_required_only
def home() -> ResponseReturnValue:
    # Site staff belong to one site and see nothing else of the inventory: their site and its contacts.
    if current_user.role is Role.SITE_STAFF:
        return render_template("home.html", own_site=current_user.site)
    can_view = role_can(current_user.role, "inventory.view")
    scope = request_scope()
    counts = queries.inventory_counts(db.session, scope) if can_view else None
    windows = queries.upcoming_maintenance(db.session, scope=scope) if can_view else []
    return render_template("home.html", own_site=None, counts=counts, windows=windows, statuses=list(Status))


# ---------------------------------------------------------------- sites

@bp.get("/sites")
@require("inventory.view")
def site_list() -> ResponseReturnValue:
    sample = {"yes": True, "no": False}.get(request.args.get("sample", ""))
    levels = service.list_levels(db.session)
    level = _choice_arg("level", tuple(lv.code for lv in levels))
    f = queries.SiteFilter(q=request.args.get("q", "").strip(), level=level,
                           within=request.args.get("within", type=int),
                           status=_choice_arg("status", Status), sample=sample, scope=request_scope())
    page = paginate_request(queries.site_query(db.session, f).options(so.selectinload(Site.parent)))
    return render_template("sites/site_list.html", page=page, f=f, levels=levels,
                           parents=queries.parent_sites(db.session, f.scope), statuses=list(Status))


@bp.get("/sites/tree")
@require("inventory.view")
def site_tree() -> ResponseReturnValue:
    within = request.args.get("within", type=int)
    root = _visible(Site, within, _("No site with id %(id)s.", id=within)) if within else None
    levels = service.list_levels(db.session)
    group_level = next((lv for lv in levels if lv.code == request.args.get("group")), None)
    groups: list[tuple[Site | None, list[Site]]] = []
    if group_level is not None:
        sites = db.session.scalars(queries.site_query(db.session, queries.SiteFilter(within=within,
                                                                                     scope=request_scope()))).all()
        grouped = tree.group_by_ancestor(db.session, sites, group_level)
        # Each group lists the sites below its ancestor; sites at or above the level head groups or are above them.
        for ancestor, members in grouped.items():
            below = [s for s in members if s.level.rank > group_level.rank]
            if ancestor is not None or below:
                groups.append((ancestor, below))
        groups.sort(key=lambda g: (g[0] is None, g[0].code if g[0] else ""))
    roots = queries.site_tree(db.session, root, request_scope()) if group_level is None else []
    return render_template("sites/site_tree.html", roots=roots, root=root, levels=levels, group_level=group_level,
                           groups=groups, parents=queries.parent_sites(db.session, request_scope()))


@bp.get("/sites/<int:site_id>")
@require("inventory.view")
def site_detail(site_id: int) -> ResponseReturnValue:
    site = _visible(Site, site_id, _("No site with id %(id)s.", id=site_id))
    return render_template("sites/site_detail.html", site=site, ancestors=tree.ancestors(db.session, site),
                           links=queries.site_links(db.session, site),
                           uplink=tree.uplink(db.session, site),
                           windows=queries.site_maintenance(db.session, site),
                           bridges=queries.site_bridges(db.session, site))


def _site_form_page(form: SiteForm, site: Site | None) -> ResponseReturnValue:
    """Show, refuse or save the site form (create when `site` is None)."""
    form.level.choices = [SelectChoice(lv.code, lv.name) for lv in service.list_levels(db.session)]
    parents = [s for s in queries.site_options(db.session, scope=request_scope()) if site is None or s.id != site.id]
    if site is not None and site.parent is not None and site.parent not in parents:
        parents.append(site.parent)
    form.set_site_choices(parents, "parent_id", optional=True)
    form.allow_status(site.status if site else None)
    context = {"site": site}
    if form.add_contact.data:  # "add a contact row" re-shows the form with one more row; nothing is saved
        form.contacts.append_entry()
        return render_template("sites/site_form.html", form=form, **context)
    if not form.validate_on_submit():
        if request.method == "GET":
            form.pad_contacts()
        return _not_valid(form, "sites/site_form.html", **context)
    try:
        scopes.settings_unchanged(request_scope(), form.changes(), site)
        saved = (service.create_site(db.session, form.changes()) if site is None
                 else service.update_site(db.session, site, form.changes()))
        scopes.require_change(request_scope(), saved)  # not created or moved outside the scope
        service.replace_contacts(db.session, saved, form.contact_rows())
    except DomainError as error:
        return _show_refusal(error, form, "sites/site_form.html", **context)
    flash(_("Site %(code)s saved.", code=saved.code), "success")
    return redirect(_detail_url("site", saved))


@bp.route("/sites/new", methods=["GET", "POST"])
@require("inventory.edit")
def site_create() -> ResponseReturnValue:
    form = SiteForm()
    if request.method == "GET":
        form.parent_id.data = request.args.get("parent_id", type=int)
    return _site_form_page(form, None)


@bp.route("/sites/<int:site_id>/edit", methods=["GET", "POST"])
@require("inventory.edit")
def site_edit(site_id: int) -> ResponseReturnValue:
    site = _changeable(Site, site_id, _("No site with id %(id)s.", id=site_id))
    form = SiteForm(obj=site) if request.method == "GET" else SiteForm()
    if request.method == "GET":
        form.level.data = site.level.code
    return _site_form_page(form, site)


@bp.route("/sites/<int:site_id>/retire", methods=["GET", "POST"])
@require("inventory.edit")
def site_retire(site_id: int) -> ResponseReturnValue:
    site = _changeable(Site, site_id, _("No site with id %(id)s.", id=site_id))
    title = _("Retire the site %(name)s", name=site.name)
    message = _("The site, its rooms, its hosts and its links will be marked retired. They stay in the inventory "
                "with that status.")
    details = [e.room_name for e in site.endpoints if e.status is not Status.RETIRED]
    details += [h.name for h in site.hosts if h.status is not Status.RETIRED]
    details += [link.code for link in queries.site_links(db.session, site) if link.status is not Status.RETIRED]
    shown = {"details": details, "details_title": _("Retired with it:")}
    cancel = _detail_url("site", site)
    if request.method == "GET":
        return _confirm(title, message, _("Retire"), cancel, **shown)
    try:
        service.retire_site(db.session, site)
    except DomainError as error:
        db.session.rollback()
        return _confirm(title, message, _("Retire"), cancel, error=error, **shown)
    flash(_("Site %(code)s retired.", code=site.code), "success")
    return redirect(cancel)


# ---------------------------------------------------------------- endpoints, bridges, hosts and links

def _equipment_form_page(form: InventoryForm, kind: str, title: str, obj: Any,
                         save: Callable[[dict[str, Any]], Any]) -> ResponseReturnValue:
    """Show, refuse or save an equipment form; the same for endpoints, bridges, hosts and links."""
    form.allow_status(getattr(obj, "status", None))
    context = {"title": title, "cancel": _detail_url(kind, obj) if obj else url_for(f"sites.{kind}_list")}
    if not form.validate_on_submit():
        return _not_valid(form, "sites/equipment_form.html", **context)
    try:
        saved = scopes.require_change(request_scope(), save(form.changes()))  # not put outside the scope
    except DomainError as error:
        return _show_refusal(error, form, "sites/equipment_form.html", **context)
    flash(_("Saved."), "success")
    return redirect(_detail_url(kind, saved))


def _new_form(form_class: type[InventoryForm], obj: Any) -> InventoryForm:
    form = form_class(obj=obj) if request.method == "GET" and obj is not None else form_class()
    if request.method == "GET" and obj is None:
        for name in ("site_id", "site_a_id"):  # "add a room here" from a site's page
            if name in form._fields and (site_id := request.args.get("site_id", type=int)):
                form[name].data = site_id
                break
    return form


def _equipment_filter() -> queries.EquipmentFilter:
    return queries.EquipmentFilter(q=request.args.get("q", "").strip(), within=request.args.get("within", type=int),
                                   status=_choice_arg("status", Status), scope=request_scope())


def _retire_page(kind: str, obj: Any, name: str) -> ResponseReturnValue:
    title = _("Retire %(name)s", name=name)
    message = _("It will be marked retired and stay in the inventory with that status.")
    cancel = _detail_url(kind, obj)
    if request.method == "GET":
        return _confirm(title, message, _("Retire"), cancel)
    equipment.retire(db.session, obj)
    flash(_("%(name)s retired.", name=name), "success")
    return redirect(cancel)


@bp.get("/endpoints")
@require("inventory.view")
def endpoint_list() -> ResponseReturnValue:
    f = _equipment_filter()
    f.kind = _choice_arg("kind", EndpointKind)
    page = paginate_request(queries.endpoint_query(db.session, f).options(so.contains_eager(Endpoint.site)))
    return render_template("sites/endpoint_list.html", page=page, f=f, kinds=list(EndpointKind),
                           parents=queries.parent_sites(db.session, f.scope), statuses=list(Status))


@bp.get("/endpoints/<int:endpoint_id>")
@require("inventory.view")
def endpoint_detail(endpoint_id: int) -> ResponseReturnValue:
    endpoint = _visible(Endpoint, endpoint_id, _("No endpoint with id %(id)s.", id=endpoint_id))
    return render_template("sites/endpoint_detail.html", endpoint=endpoint,
                           windows=_windows_of("endpoint", endpoint.id))


def _endpoint_form(endpoint: Endpoint | None) -> ResponseReturnValue:
    form = _new_form(EndpointForm, endpoint)
    form.set_site_choices(_site_choices(endpoint.site if endpoint else None), "site_id")
    title = _("Edit the room %(name)s", name=endpoint.room_name) if endpoint else _("New endpoint")
    return _equipment_form_page(form, "endpoint", title, endpoint,
                                lambda data: equipment.save_endpoint(db.session, data, endpoint))


@bp.route("/endpoints/new", methods=["GET", "POST"])
@require("inventory.edit")
def endpoint_create() -> ResponseReturnValue:
    return _endpoint_form(None)


@bp.route("/endpoints/<int:endpoint_id>/edit", methods=["GET", "POST"])
@require("inventory.edit")
def endpoint_edit(endpoint_id: int) -> ResponseReturnValue:
    return _endpoint_form(_changeable(Endpoint, endpoint_id,
                                       _("No endpoint with id %(id)s.", id=endpoint_id)))


@bp.route("/endpoints/<int:endpoint_id>/retire", methods=["GET", "POST"])
@require("inventory.edit")
def endpoint_retire(endpoint_id: int) -> ResponseReturnValue:
    endpoint = _changeable(Endpoint, endpoint_id, _("No endpoint with id %(id)s.", id=endpoint_id))
    return _retire_page("endpoint", endpoint, f"{endpoint.site.name} — {endpoint.room_name}")


@bp.get("/bridges")
@require("inventory.view")
def bridge_list() -> ResponseReturnValue:
    f = _equipment_filter()
    page = paginate_request(queries.bridge_query(db.session, f))
    return render_template("sites/bridge_list.html", page=page, f=f, parents=queries.parent_sites(db.session, f.scope),
                           statuses=list(Status))


@bp.get("/bridges/<int:bridge_id>")
@require("inventory.view")
def bridge_detail(bridge_id: int) -> ResponseReturnValue:
    bridge = _visible(Bridge, bridge_id, _("No bridge with id %(id)s.", id=bridge_id))
    return render_template("sites/bridge_detail.html", bridge=bridge, windows=_windows_of("bridge", bridge.id))


def _bridge_form(bridge: Bridge | None) -> ResponseReturnValue:
    form = _new_form(BridgeForm, bridge)
    form.set_site_choices(_site_choices(bridge.site if bridge else None), "site_id", optional=True)
    title = _("Edit the bridge %(name)s", name=bridge.name) if bridge else _("New bridge")
    return _equipment_form_page(form, "bridge", title, bridge,
                                lambda data: equipment.save_bridge(db.session, data, bridge))


@bp.route("/bridges/new", methods=["GET", "POST"])
@require("inventory.edit")
def bridge_create() -> ResponseReturnValue:
    return _bridge_form(None)


@bp.route("/bridges/<int:bridge_id>/edit", methods=["GET", "POST"])
@require("inventory.edit")
def bridge_edit(bridge_id: int) -> ResponseReturnValue:
    return _bridge_form(_changeable(Bridge, bridge_id, _("No bridge with id %(id)s.", id=bridge_id)))


@bp.route("/bridges/<int:bridge_id>/retire", methods=["GET", "POST"])
@require("inventory.edit")
def bridge_retire(bridge_id: int) -> ResponseReturnValue:
    bridge = _changeable(Bridge, bridge_id, _("No bridge with id %(id)s.", id=bridge_id))
    return _retire_page("bridge", bridge, bridge.name)


@bp.get("/hosts")
@require("inventory.view")
def host_list() -> ResponseReturnValue:
    f = _equipment_filter()
    f.kind = _choice_arg("kind", HostKind)
    page = paginate_request(queries.host_query(db.session, f).options(so.contains_eager(ManagedHost.site)))
    return render_template("sites/host_list.html", page=page, f=f, kinds=list(HostKind),
                           parents=queries.parent_sites(db.session, f.scope), statuses=list(Status))


@bp.get("/hosts/<int:host_id>")
@require("inventory.view")
def host_detail(host_id: int) -> ResponseReturnValue:
    return render_template("sites/host_detail.html", host=_visible(ManagedHost, host_id,
                                                                       _("No host with id %(id)s.", id=host_id)))


def _host_form(host: ManagedHost | None) -> ResponseReturnValue:
    form = _new_form(HostForm, host)
    form.set_site_choices(_site_choices(host.site if host else None), "site_id")
    title = _("Edit the host %(name)s", name=host.name) if host else _("New managed host")
    return _equipment_form_page(form, "host", title, host, lambda data: equipment.save_host(db.session, data, host))


@bp.route("/hosts/new", methods=["GET", "POST"])
@require("inventory.edit")
def host_create() -> ResponseReturnValue:
    return _host_form(None)


@bp.route("/hosts/<int:host_id>/edit", methods=["GET", "POST"])
@require("inventory.edit")
def host_edit(host_id: int) -> ResponseReturnValue:
    return _host_form(_changeable(ManagedHost, host_id, _("No host with id %(id)s.", id=host_id)))


@bp.route("/hosts/<int:host_id>/retire", methods=["GET", "POST"])
@require("inventory.edit")
def host_retire(host_id: int) -> ResponseReturnValue:
    host = _changeable(ManagedHost, host_id, _("No host with id %(id)s.", id=host_id))
    return _retire_page("host", host, host.name)


@bp.get("/links")
@require("inventory.view")
def link_list() -> ResponseReturnValue:
    f = queries.LinkFilter(q=request.args.get("q", "").strip(), within=request.args.get("within", type=int),
                           medium=_choice_arg("medium", LinkMedium), status=_choice_arg("status", Status),
                           scope=request_scope())
    page = paginate_request(queries.link_query(db.session, f)
                     .options(so.selectinload(Link.site_a), so.selectinload(Link.site_b)))
    return render_template("sites/link_list.html", page=page, f=f, media=list(LinkMedium),
                           parents=queries.parent_sites(db.session, f.scope), statuses=list(Status))


@bp.get("/links/<int:link_id>")
@require("inventory.view")
def link_detail(link_id: int) -> ResponseReturnValue:
    link = _visible(Link, link_id, _("No link with id %(id)s.", id=link_id))
    return render_template("sites/link_detail.html", link=link, windows=_windows_of("link", link.id))


def _link_form(link: Link | None) -> ResponseReturnValue:
    form = _new_form(LinkForm, link)
    form.set_site_choices(_site_choices(link.site_a if link else None, link.site_b if link else None),
                          "site_a_id", "site_b_id")
    title = _("Edit the link %(code)s", code=link.code) if link else _("New link")
    return _equipment_form_page(form, "link", title, link, lambda data: equipment.save_link(db.session, data, link))


@bp.route("/links/new", methods=["GET", "POST"])
@require("inventory.edit")
def link_create() -> ResponseReturnValue:
    return _link_form(None)


@bp.route("/links/<int:link_id>/edit", methods=["GET", "POST"])
@require("inventory.edit")
def link_edit(link_id: int) -> ResponseReturnValue:
    return _link_form(_changeable(Link, link_id, _("No link with id %(id)s.", id=link_id)))


@bp.route("/links/<int:link_id>/retire", methods=["GET", "POST"])
@require("inventory.edit")
def link_retire(link_id: int) -> ResponseReturnValue:
    link = _changeable(Link, link_id, _("No link with id %(id)s.", id=link_id))
    return _retire_page("link", link, link.code)


def _site_choices(*current: Site | None) -> list[Site]:
    """Sites in service, plus the ones a row already points to (so that editing it keeps them)."""
    sites = queries.site_options(db.session, scope=request_scope())
    return sites + [s for s in current if s is not None and s not in sites]


# ---------------------------------------------------------------- maintenance windows

def _windows_of(kind: str, object_id: int) -> list[MaintenanceWindow]:
    stmt = queries.maintenance_query(db.session, queries.MaintenanceFilter(target_kind=kind, target_id=object_id))
    return list(db.session.scalars(stmt.limit(20)))


def _target_label(kind: str, obj: Any) -> str:
    if kind == "site":
        return f"{obj.code} — {obj.name}"
    if kind == "endpoint":
        return f"{obj.site.code} — {obj.room_name}"
    return obj.name if kind == "bridge" else obj.code


@bp.app_template_global("maintenance_target")
def maintenance_target(window: MaintenanceWindow) -> dict[str, str]:
    """What a window is on, as the pages show it: a label and the address of its page."""
    kind = maintenance.maintenance_target_kind(window)
    obj = window.target
    return {"kind": kind, "label": _target_label(kind, obj), "url": _detail_url(kind, obj)}


def _target_choices(fixed: str) -> tuple[list[SelectChoice], Any]:
    """The window's target: the one its page asked for (?target=site:5), or a choice of everything in service."""
    kind, _sep, ident = fixed.partition(":")
    model = maintenance.MAINTENANCE_TARGETS.get(kind)
    if model is not None and ident.isdigit():
        obj = scopes.require_change(request_scope(), maintenance.find_target(db.session, kind, int(ident)))
        return [SelectChoice(fixed, _target_label(kind, obj))], obj
    group_labels = {"site": _("Sites"), "endpoint": _("Endpoints"), "bridge": _("Bridges"), "link": _("Links")}
    choices = [SelectChoice("", _("Choose what the work is on"))]
    for kind, objects in queries.maintenance_targets(db.session, request_scope()).items():
        choices += [SelectChoice(f"{kind}:{o.id}", _target_label(kind, o), optgroup=group_labels[kind])
                    for o in objects]
    return choices, None


@bp.get("/maintenance")
@require("inventory.view")
def maintenance_list() -> ResponseReturnValue:
    when = _choice_arg("when", queries.MAINTENANCE_PERIODS)
    q = request.args.get("q", "").strip()
    page = paginate_request(queries.maintenance_list_query(db.session, when, q, scope=request_scope()))
    user_ids = {w.created_by_id for w in page.items if w.created_by_id}
    users = {u.id: u for u in db.session.scalars(sa.select(User).where(User.id.in_(user_ids)))} if user_ids else {}
    return render_template("sites/maintenance_list.html", page=page, when=when, q=q, users=users,
                           periods=queries.MAINTENANCE_PERIODS)


@bp.route("/maintenance/new", methods=["GET", "POST"])
@require("maintenance.edit")
def maintenance_create() -> ResponseReturnValue:
    fixed = request.args.get("target", "")
    form = MaintenanceForm()
    form.target.choices, target = _target_choices(fixed)
    if request.method == "GET" and target is not None:
        form.target.data = fixed
    cancel = _detail_url(fixed.partition(":")[0], target) if target else url_for("sites.maintenance_list")
    context = {"target": target, "cancel": cancel}
    if not form.validate_on_submit():
        return _not_valid(form, "sites/maintenance_form.html", **context)
    kind, object_id = form.target_ref()
    starts_at, ends_at = form.period_utc()
    try:
        window = maintenance.create_maintenance(db.session, kind, object_id, starts_at, ends_at, form.reason.data or "",
                                                current_user.id)
        scopes.require_change(request_scope(), window)
    except DomainError as error:
        return _show_refusal(error, form, "sites/maintenance_form.html", aliases={"target_kind": "target"},
                             **context)
    flash(_("Maintenance window saved."), "success")
    overlapping = maintenance.meetings_overlapping(db.session, window)
    if overlapping:
        zone = local_zone()
        flash(_("Warning: this maintenance overlaps booked meetings: %(meetings)s.", meetings="; ".join(
            f"{title} ({start.astimezone(zone):%H:%M %d/%m/%Y})" for title, start in overlapping)), "warning")
    return redirect(maintenance_target(window)["url"])


@bp.route("/maintenance/<int:window_id>/delete", methods=["GET", "POST"])
@require("maintenance.edit")
def maintenance_delete(window_id: int) -> ResponseReturnValue:
    window = _changeable(MaintenanceWindow, window_id,
                          _("No maintenance window with id %(id)s.", id=window_id))
    target = maintenance_target(window)
    if request.method == "GET":
        return _confirm(_("Delete a maintenance window"),
                        _("Delete the maintenance window on %(target)s: %(reason)s?", target=target["label"],
                          reason=window.reason),
                        _("Delete"), target["url"])
    maintenance.delete_maintenance(db.session, window)
    flash(_("Maintenance window deleted."), "success")
    return redirect(target["url"])
