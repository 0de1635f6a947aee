"""The inventory's JSON API under /api/v1: sites, endpoints, bridges, hosts, links, maintenance windows, levels.

Thin views: the schemas (app.sites.schemas) parse, the sites' services (app.sites.service, .equipment,
.maintenance) do the work and app.sites.queries reads, the request's commit point commits. Every view
carries its access rule; errors come in the one format of app.errors, and the OpenAPI document at
/api/v1/openapi.json is generated from these decorators.

Conventions: lists are `GET /<resource>` with `page` and `page_size` and answer {items, total, page, page_size};
`POST /<resource>` creates (201 with Location); `PATCH /<resource>/<id>` changes the fields given;
`POST /<resource>/<id>/retire` retires (records are kept for history; maintenance windows are deleted instead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import url_for
from flask.views import MethodView
from flask_babel import gettext as _
from flask_login import current_user
from flask_smorest import Blueprint

from app.db import db
from app.sites import equipment, queries, schemas, service
from app.sites import maintenance as windows
from app.sites import scope as scopes
from app.sites.models import Bridge, Endpoint, Link, MaintenanceWindow, ManagedHost, Site
from app.sites.scope import request_scope
from app.web.access import require
from app.web.api import ApiBlueprint
from app.web.pagination import paginate

F = TypeVar("F", bound=Callable[..., Any])
Args = dict[str, Any]
PAGING = ("page", "page_size")


def _filter(filter_cls: type[Any], args: Args) -> Any:
    """The list's filter from the query, always limited to the user's scope."""
    return filter_cls(**{name: value for name, value in args.items() if name not in PAGING}, scope=request_scope())


def _visible(model: type[Any], object_id: Any, message: str) -> Any:
    """The object, or 404 when it does not exist or lies outside the user's scope."""
    return scopes.get_visible(db.session, request_scope(), model, object_id, message)


def _changeable(model: type[Any], object_id: Any, message: str) -> Any:
    """The object, 404 as above, or 403 naming the scope when the user sees it but may not change it."""
    return scopes.get_changeable(db.session, request_scope(), model, object_id, message)


def _page(stmt: sa.Select[Any], args: Args) -> Args:
    return paginate(stmt, args["page"], args["page_size"]).as_api()


def _created(obj: Any, **view_args: Any) -> tuple[Any, int, dict[str, str]]:
    return obj, 201, {"Location": url_for(".item", **view_args)}


# ---------------------------------------------------------------- sites

sites = ApiBlueprint("sites", "Sites of the tree (province, districts, communes) with their contacts.")


@sites.route("", endpoint="collection")
class SiteCollection(MethodView):
    @require("inventory.view")
    @sites.arguments(schemas.SiteQuery, location="query")
    @sites.response(200, schemas.SitePage)
    @sites.fails(404)
    def get(self, args: Args) -> Args:
        """List sites: search, level, status, a site's subtree, samples."""
        stmt = queries.site_query(db.session, _filter(queries.SiteFilter, args))
        return _page(stmt.options(so.selectinload(Site.contacts)), args)

    @require("inventory.edit")
    @sites.arguments(schemas.SiteCreate)
    @sites.response(201, schemas.SiteOut)
    @sites.fails(404, 409, 422)
    def post(self, data: Args) -> tuple[Any, int, dict[str, str]]:
        """Add a site under its parent, with its contacts."""
        contacts = data.pop("contacts", None)
        scopes.settings_unchanged(request_scope(), data)
        site = scopes.require_change(request_scope(), service.create_site(db.session, data))
        if contacts is not None:
            service.replace_contacts(db.session, site, contacts)
        return _created(site, site_id=site.id)


@sites.route("/<int:site_id>", endpoint="item")
class SiteItem(MethodView):
    @require("inventory.view")
    @sites.response(200, schemas.SiteOut)
    @sites.fails(404)
    def get(self, site_id: int) -> Site:
        """Show a site."""
        return _visible(Site, site_id, _("No site with id %(id)s.", id=site_id))

    @require("inventory.edit")
    @sites.arguments(schemas.SitePatch)
    @sites.response(200, schemas.SiteOut)
    @sites.fails(404, 409, 422)
    def patch(self, data: Args, site_id: int) -> Site:
        """Change the fields given; `contacts`, when given, replace the stored ones."""
        site = _changeable(Site, site_id, _("No site with id %(id)s.", id=site_id))
        contacts = data.pop("contacts", None)
        scopes.settings_unchanged(request_scope(), data, site)
        scopes.require_change(request_scope(), service.update_site(db.session, site, data))
        if contacts is not None:
            service.replace_contacts(db.session, site, contacts)
        return site


@sites.route("/<int:site_id>/retire", methods=["POST"], endpoint="retire")
@require("inventory.edit")
@sites.response(200, schemas.SiteOut)
@sites.fails(404, 409)
def retire_site(site_id: int) -> Site:
    """Retire a site with its rooms, hosts and links; refused while active sites remain under it."""
    return service.retire_site(db.session, _changeable(Site, site_id,
                                                        _("No site with id %(id)s.", id=site_id)))


# ---------------------------------------------------------------- endpoints

endpoints = ApiBlueprint("endpoints", "Rooms that can join a meeting: room systems and software clients.")


@endpoints.route("", endpoint="collection")
class EndpointCollection(MethodView):
    @require("inventory.view")
    @endpoints.arguments(schemas.EndpointQuery, location="query")
    @endpoints.response(200, schemas.EndpointPage)
    @endpoints.fails(404)
    def get(self, args: Args) -> Args:
        """List endpoints: search, a site's subtree, status, kind."""
        stmt = queries.endpoint_query(db.session, _filter(queries.EquipmentFilter, args))
        return _page(stmt.options(so.selectinload(Endpoint.site)), args)

    @require("inventory.edit")
    @endpoints.arguments(schemas.EndpointCreate)
    @endpoints.response(201, schemas.EndpointOut)
    @endpoints.fails(404, 409, 422)
    def post(self, data: Args) -> tuple[Any, int, dict[str, str]]:
        """Add an endpoint (a room) to a site."""
        endpoint = scopes.require_change(request_scope(), equipment.save_endpoint(db.session, data))
        return _created(endpoint, endpoint_id=endpoint.id)


@endpoints.route("/<int:endpoint_id>", endpoint="item")
class EndpointItem(MethodView):
    @require("inventory.view")
    @endpoints.response(200, schemas.EndpointOut)
    @endpoints.fails(404)
    def get(self, endpoint_id: int) -> Endpoint:
        """Show an endpoint."""
        return _visible(Endpoint, endpoint_id, _("No endpoint with id %(id)s.", id=endpoint_id))

    @require("inventory.edit")
    @endpoints.arguments(schemas.EndpointPatch)
    @endpoints.response(200, schemas.EndpointOut)
    @endpoints.fails(404, 409, 422)
    def patch(self, data: Args, endpoint_id: int) -> Endpoint:
        """Change the fields given."""
        found = _changeable(Endpoint, endpoint_id, _("No endpoint with id %(id)s.", id=endpoint_id))
        return scopes.require_change(request_scope(), equipment.save_endpoint(db.session, data, found))


@endpoints.route("/<int:endpoint_id>/retire", methods=["POST"], endpoint="retire")
@require("inventory.edit")
@endpoints.response(200, schemas.EndpointOut)
@endpoints.fails(404)
def retire_endpoint(endpoint_id: int) -> Endpoint:
    """Retire an endpoint; it is kept for history."""
    endpoint = _changeable(Endpoint, endpoint_id, _("No endpoint with id %(id)s.", id=endpoint_id))
    equipment.retire(db.session, endpoint)
    return endpoint


# ---------------------------------------------------------------- bridges

bridges = ApiBlueprint("bridges", "Bridges (MCUs): each connected room takes one of their video ports.")


@bridges.route("", endpoint="collection")
class BridgeCollection(MethodView):
    @require("inventory.view")
    @bridges.arguments(schemas.BridgeQuery, location="query")
    @bridges.response(200, schemas.BridgePage)
    @bridges.fails(404)
    def get(self, args: Args) -> Args:
        """List bridges: search, a site's subtree, status."""
        stmt = queries.bridge_query(db.session, _filter(queries.EquipmentFilter, args))
        return _page(stmt.options(so.selectinload(Bridge.site)), args)

    @require("inventory.edit")
    @bridges.arguments(schemas.BridgeCreate)
    @bridges.response(201, schemas.BridgeOut)
    @bridges.fails(404, 409, 422)
    def post(self, data: Args) -> tuple[Any, int, dict[str, str]]:
        """Add a bridge."""
        bridge = scopes.require_change(request_scope(), equipment.save_bridge(db.session, data))
        return _created(bridge, bridge_id=bridge.id)


@bridges.route("/<int:bridge_id>", endpoint="item")
class BridgeItem(MethodView):
    @require("inventory.view")
    @bridges.response(200, schemas.BridgeOut)
    @bridges.fails(404)
    def get(self, bridge_id: int) -> Bridge:
        """Show a bridge."""
        return _visible(Bridge, bridge_id, _("No bridge with id %(id)s.", id=bridge_id))

    @require("inventory.edit")
    @bridges.arguments(schemas.BridgePatch)
    @bridges.response(200, schemas.BridgeOut)
    @bridges.fails(404, 409, 422)
    def patch(self, data: Args, bridge_id: int) -> Bridge:
        """Change the fields given."""
        found = _changeable(Bridge, bridge_id, _("No bridge with id %(id)s.", id=bridge_id))
        return scopes.require_change(request_scope(), equipment.save_bridge(db.session, data, found))


@bridges.route("/<int:bridge_id>/retire", methods=["POST"], endpoint="retire")
@require("inventory.edit")
@bridges.response(200, schemas.BridgeOut)
@bridges.fails(404)
def retire_bridge(bridge_id: int) -> Bridge:
    """Retire a bridge; it is kept for history."""
    bridge = _changeable(Bridge, bridge_id, _("No bridge with id %(id)s.", id=bridge_id))
    equipment.retire(db.session, bridge)
    return bridge


# ---------------------------------------------------------------- managed hosts

hosts = ApiBlueprint("hosts", "Other managed equipment at a site: link routers, media and recording servers.")


@hosts.route("", endpoint="collection")
class HostCollection(MethodView):
    @require("inventory.view")
    @hosts.arguments(schemas.HostQuery, location="query")
    @hosts.response(200, schemas.HostPage)
    @hosts.fails(404)
    def get(self, args: Args) -> Args:
        """List managed hosts: search, a site's subtree, status, kind."""
        stmt = queries.host_query(db.session, _filter(queries.EquipmentFilter, args))
        return _page(stmt.options(so.selectinload(ManagedHost.site)), args)

    @require("inventory.edit")
    @hosts.arguments(schemas.HostCreate)
    @hosts.response(201, schemas.HostOut)
    @hosts.fails(404, 409, 422)
    def post(self, data: Args) -> tuple[Any, int, dict[str, str]]:
        """Add a managed host to a site."""
        host = scopes.require_change(request_scope(), equipment.save_host(db.session, data))
        return _created(host, host_id=host.id)


@hosts.route("/<int:host_id>", endpoint="item")
class HostItem(MethodView):
    @require("inventory.view")
    @hosts.response(200, schemas.HostOut)
    @hosts.fails(404)
    def get(self, host_id: int) -> ManagedHost:
        """Show a managed host."""
        return _visible(ManagedHost, host_id, _("No host with id %(id)s.", id=host_id))

    @require("inventory.edit")
    @hosts.arguments(schemas.HostPatch)
    @hosts.response(200, schemas.HostOut)
    @hosts.fails(404, 409, 422)
    def patch(self, data: Args, host_id: int) -> ManagedHost:
        """Change the fields given."""
        found = _changeable(ManagedHost, host_id, _("No host with id %(id)s.", id=host_id))
        return scopes.require_change(request_scope(), equipment.save_host(db.session, data, found))


@hosts.route("/<int:host_id>/retire", methods=["POST"], endpoint="retire")
@require("inventory.edit")
@hosts.response(200, schemas.HostOut)
@hosts.fails(404)
def retire_host(host_id: int) -> ManagedHost:
    """Retire a managed host; it is kept for history."""
    host = _changeable(ManagedHost, host_id, _("No host with id %(id)s.", id=host_id))
    equipment.retire(db.session, host)
    return host


# ---------------------------------------------------------------- links

links = ApiBlueprint("links", "Network links, each with two ends (site A and site B) and the address probed at each.")


@links.route("", endpoint="collection")
class LinkCollection(MethodView):
    @require("inventory.view")
    @links.arguments(schemas.LinkQuery, location="query")
    @links.response(200, schemas.LinkPage)
    @links.fails(404)
    def get(self, args: Args) -> Args:
        """List links: search, either end in a site's subtree, medium, status."""
        stmt = queries.link_query(db.session, _filter(queries.LinkFilter, args))
        return _page(stmt.options(so.selectinload(Link.site_a), so.selectinload(Link.site_b)), args)

    @require("inventory.edit")
    @links.arguments(schemas.LinkCreate)
    @links.response(201, schemas.LinkOut)
    @links.fails(404, 409, 422)
    def post(self, data: Args) -> tuple[Any, int, dict[str, str]]:
        """Add a link between two sites."""
        link = scopes.require_change(request_scope(), equipment.save_link(db.session, data))
        return _created(link, link_id=link.id)


@links.route("/<int:link_id>", endpoint="item")
class LinkItem(MethodView):
    @require("inventory.view")
    @links.response(200, schemas.LinkOut)
    @links.fails(404)
    def get(self, link_id: int) -> Link:
        """Show a link."""
        return _visible(Link, link_id, _("No link with id %(id)s.", id=link_id))

    @require("inventory.edit")
    @links.arguments(schemas.LinkPatch)
    @links.response(200, schemas.LinkOut)
    @links.fails(404, 409, 422)
    def patch(self, data: Args, link_id: int) -> Link:
        """Change the fields given."""
        found = _changeable(Link, link_id, _("No link with id %(id)s.", id=link_id))
        return scopes.require_change(request_scope(), equipment.save_link(db.session, data, found))


@links.route("/<int:link_id>/retire", methods=["POST"], endpoint="retire")
@require("inventory.edit")
@links.response(200, schemas.LinkOut)
@links.fails(404)
def retire_link(link_id: int) -> Link:
    """Retire a link; it is kept for history."""
    link = _changeable(Link, link_id, _("No link with id %(id)s.", id=link_id))
    equipment.retire(db.session, link)
    return link


# ---------------------------------------------------------------- maintenance windows

maintenance = ApiBlueprint("maintenance", "Maintenance windows: planned work on a site, endpoint, bridge or link.")


@maintenance.route("", endpoint="collection")
class MaintenanceCollection(MethodView):
    @require("inventory.view")
    @maintenance.arguments(schemas.MaintenanceQuery, location="query")
    @maintenance.response(200, schemas.MaintenancePage)
    @maintenance.fails(422)
    def get(self, args: Args) -> Args:
        """List maintenance windows, latest first: by target, or overlapping a period."""
        return _page(queries.maintenance_query(db.session, _filter(queries.MaintenanceFilter, args)), args)

    @require("maintenance.edit")
    @maintenance.arguments(schemas.MaintenanceCreate)
    @maintenance.response(201, schemas.MaintenanceOut)
    @maintenance.fails(404, 422)
    def post(self, data: Args) -> tuple[Any, int, dict[str, str]]:
        """Plan a maintenance window on one site, endpoint, bridge or link."""
        window = scopes.require_change(request_scope(),
                                       windows.create_maintenance(db.session, created_by_id=current_user.id, **data))
        return _created(window, window_id=window.id)


@maintenance.route("/<int:window_id>", endpoint="item")
class MaintenanceItem(MethodView):
    @require("inventory.view")
    @maintenance.response(200, schemas.MaintenanceOut)
    @maintenance.fails(404)
    def get(self, window_id: int) -> MaintenanceWindow:
        """Show a maintenance window."""
        return _visible(MaintenanceWindow, window_id,
                            _("No maintenance window with id %(id)s.", id=window_id))

    @require("maintenance.edit")
    @maintenance.arguments(schemas.MaintenancePatch)
    @maintenance.response(200, schemas.MaintenanceOut)
    @maintenance.fails(404, 422)
    def patch(self, data: Args, window_id: int) -> MaintenanceWindow:
        """Move a window or change its reason; its target stays."""
        window = _changeable(MaintenanceWindow, window_id,
                              _("No maintenance window with id %(id)s.", id=window_id))
        return windows.update_maintenance(db.session, window, data)

    @require("maintenance.edit")
    @maintenance.response(204)
    @maintenance.fails(404)
    def delete(self, window_id: int) -> None:
        """Delete a maintenance window."""
        windows.delete_maintenance(db.session, _changeable(MaintenanceWindow, window_id,
                                                            _("No maintenance window with id %(id)s.", id=window_id)))


# ---------------------------------------------------------------- levels

levels = ApiBlueprint("levels", "The administrative levels, highest first (data, not code: three or two of them).")


@levels.route("", endpoint="collection")
@require("inventory.view")
@levels.arguments(schemas.LevelQuery, location="query")
@levels.response(200, schemas.LevelList)
@levels.fails(422)
def list_levels(_args: Args) -> Args:
    """List the levels, highest first."""
    return {"items": service.list_levels(db.session)}


blueprints: list[Blueprint] = [sites, endpoints, bridges, hosts, links, maintenance, levels]
