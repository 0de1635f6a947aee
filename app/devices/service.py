"""Opening a device from the inventory, and the quick actions technicians ask of an endpoint.

A quick action (its status, its configuration) is a DeviceAction row written with an outbox message in the
request's transaction; after the commit a worker runs it over SSH, with no transaction open while the device
answers, and records the result or the error on the row, which the endpoint's devices page polls.

Credentials come from a source set from outside (`set_credential_source`): devices sit below provisioning and
do not import its credential store, so the factory (app.connect_domains) hands them its
credential_for_endpoint; the tests set sources of their own.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from flask_babel import gettext as _

from app.auth.models import User
from app.db import commit_scope, get_or_raise, utcnow
from app.devices.hostkeys import DatabasePins
from app.devices.models import ActionKind, ActionState, DeviceAction
from app.devices.profile import (
    DeviceError,
    DeviceProfile,
    HostKeyPolicy,
    Login,
    NotSupported,
    Target,
    Timing,
    profile_class,
)
from app.errors import DomainError, Invalid, NotFound
from app.queue import outbox
from app.sites import scope as scopes
from app.sites.models import Endpoint, Status
from app.sites.scope import Scope

log = logging.getLogger(__name__)

CredentialSource = Callable[[so.Session, Endpoint], Login]
_credential_source: CredentialSource | None = None
# A quick action still queued or running after this long is taken as lost (a worker died): asking again starts
# a new one instead of waiting for it.
STALE_AFTER = dt.timedelta(minutes=5)

QUICK_ACTIONS: dict[ActionKind, Callable[[DeviceProfile], dict[str, Any]]] = {
    ActionKind.STATUS: lambda device: device.status(),
    ActionKind.FETCH_CONFIG: lambda device: {"config": device.get_config()},
}


def set_credential_source(source: CredentialSource | None) -> CredentialSource | None:
    """Use `source(session, endpoint)` for device logins (None: none, every login is refused); returns the
    previous one, so that a caller can put it back."""
    global _credential_source
    previous, _credential_source = _credential_source, source
    return previous


def credential_for(session: so.Session, endpoint: Endpoint) -> Login:
    """The login for the endpoint, from the credential source; refused (DeviceError) when none is set."""
    if _credential_source is None:
        raise DeviceError(_("No credential store is available to log in to %(room)s.", room=endpoint.room_name))
    return _credential_source(session, endpoint)


def device_timing() -> Timing:
    config = current_app.config
    return Timing(connect_timeout=float(config["DEVICE_CONNECT_TIMEOUT"]),
                  command_timeout=float(config["DEVICE_COMMAND_TIMEOUT"]),
                  keepalive=int(config["DEVICE_KEEPALIVE"]))


def target_of(endpoint: Endpoint) -> Target:
    return Target(endpoint.mgmt_address, endpoint.mgmt_port, label=endpoint.room_name)


def check_manageable(endpoint: Endpoint) -> None:
    """Refuse, with the reason, an endpoint VCOps cannot talk to."""
    if endpoint.status == Status.RETIRED:
        raise Invalid(_("The endpoint is retired."))
    if not endpoint.mgmt_address:
        raise Invalid(_("The endpoint has no management address."),
                      fields={"mgmt_address": [_("A management address is needed to reach the device.")]})
    try:
        profile_class(endpoint.vendor)
    except NotSupported as exc:
        raise Invalid(exc.message, fields={"vendor": [exc.message]}) from exc


def open_device(session: so.Session, endpoint: Endpoint, host_keys: HostKeyPolicy | None = None,
                timing: Timing | None = None) -> DeviceProfile:
    """The endpoint's profile, ready to connect on its first request (use it in a `with` block)."""
    check_manageable(endpoint)
    cls = profile_class(endpoint.vendor)
    return cls(target_of(endpoint), credential_for(session, endpoint), host_keys or DatabasePins(),
               timing or device_timing())


# ---------------------------------------------------------------- quick actions

def get_endpoint(session: so.Session, endpoint_id: int, scope: Scope | None = None) -> Endpoint:
    """The endpoint, or 404 (also when it lies outside the scope)."""
    return scopes.get_visible(session, scope, Endpoint, endpoint_id,
                              _("No endpoint with id %(id)s.", id=endpoint_id))


def get_action(session: so.Session, action_id: int, scope: Scope | None = None) -> DeviceAction:
    """The action, or 404 (also when its endpoint lies outside the scope)."""
    message = _("No device action with id %(id)s.", id=action_id)
    action = get_or_raise(session, DeviceAction, action_id, message)
    if not scopes.sees(scope, action.endpoint.site_id):
        raise NotFound(message)
    return action


def parse_action(value: str) -> ActionKind:
    try:
        return ActionKind(value)
    except ValueError:
        raise Invalid(_("Unknown device action “%(action)s”.", action=value),
                      fields={"action": [_("Choose one of: %(choices)s.",
                                           choices=", ".join(a.value for a in ActionKind))]}) from None


def request_action(session: so.Session, endpoint: Endpoint, action: ActionKind, user: User | None) -> DeviceAction:
    """Queue a quick action, or return the same one already waiting (two clicks make one SSH session)."""
    check_manageable(endpoint)
    waiting = session.scalar(
        sa.select(DeviceAction)
        .where(DeviceAction.endpoint_id == endpoint.id, DeviceAction.action == action,
               DeviceAction.state.in_([ActionState.QUEUED, ActionState.RUNNING]),
               DeviceAction.created_at > utcnow() - STALE_AFTER)
        .order_by(DeviceAction.id.desc()).limit(1))
    if waiting is not None:
        return waiting
    row = DeviceAction(endpoint_id=endpoint.id, action=action, state=ActionState.QUEUED,
                       requested_by_id=user.id if user is not None else None)
    session.add(row)
    session.flush()
    outbox.enqueue(session, "devices.quick_action", action_id=row.id)
    return row


def recent_actions(session: so.Session, endpoint: Endpoint, limit: int = 10) -> list[DeviceAction]:
    return list(session.scalars(sa.select(DeviceAction).where(DeviceAction.endpoint_id == endpoint.id)
                                .order_by(DeviceAction.id.desc()).limit(limit)))


def latest_result(session: so.Session, endpoint: Endpoint, action: ActionKind) -> DeviceAction | None:
    return session.scalar(sa.select(DeviceAction)
                          .where(DeviceAction.endpoint_id == endpoint.id, DeviceAction.action == action,
                                 DeviceAction.state == ActionState.SUCCEEDED)
                          .order_by(DeviceAction.id.desc()).limit(1))


def is_stale(action: DeviceAction) -> bool:
    return not action.finished and action.created_at < utcnow() - STALE_AFTER


def _finish(action_id: int, result: dict[str, Any] | None, error: str) -> None:
    with commit_scope() as session:
        row = session.get(DeviceAction, action_id)
        if row is None:
            return
        row.state = ActionState.FAILED if error else ActionState.SUCCEEDED
        row.result = result
        row.error = error[:4000]
        row.finished_at = utcnow()


def run_quick_action(action_id: int) -> None:
    """Run one quick action on a worker. Every outcome is recorded on the row; none is retried by the queue
    (a technician asks again), so a device that does not answer costs one timeout, not five."""
    with commit_scope() as session:
        row = session.get(DeviceAction, action_id)
        if row is None or row.state != ActionState.QUEUED:
            return
        row.state = ActionState.RUNNING
        row.started_at = utcnow()
        kind = row.action
        try:
            device = open_device(session, row.endpoint)
        except (DeviceError, DomainError) as exc:
            row.state, row.error, row.finished_at = ActionState.FAILED, exc.message, utcnow()
            return
        except Exception as exc:  # the credential store failed: recorded, not retried
            log.exception("device action %s could not start", action_id)
            row.state, row.error, row.finished_at = ActionState.FAILED, f"{type(exc).__name__}: {exc}", utcnow()
            return
    # No transaction is open while the device answers (the host-key check commits on its own).
    result, error = None, ""
    try:
        with device:
            result = QUICK_ACTIONS[kind](device)
    except DeviceError as exc:
        error = exc.message
    except Exception as exc:  # recorded for the technician; the traceback goes to the worker's log
        log.exception("device action %s failed", action_id)
        error = f"{type(exc).__name__}: {exc}"
    _finish(action_id, result, error)
