"""Quick device actions: a technician asks from the endpoint's devices page, the queue runs it, the page shows
the result; host keys wait on their page for a technician to accept them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from app.auth.audit import AuditEntry
from app.auth.models import Role
from app.auth.service import create_user
from app.db import commit_scope, db
from app.devices import profile, service
from app.devices.models import ActionKind, ActionState, DeviceAction, HostKey, HostKeyState
from app.devices.profile import Change, DeviceError, DeviceLogin, DeviceProfile, register
from app.queue.models import OutboxMessage
from app.queue.tasks import configure_queue, huey
from app.sites.models import Endpoint, Level, Site
from tests.conftest import BACKENDS, PASSWORD

LAB_VENDOR = "Testlab"


class LabProfile(DeviceProfile):
    """A second vendor, made in a few lines: the quick actions need nothing else to use it."""

    vendor = LAB_VENDOR
    fail_with = ""

    def status(self) -> dict[str, Any]:
        if self.fail_with:
            raise DeviceError(self.fail_with)
        return {"vendor": self.vendor, "product": "Lab room", "serial": "LAB1", "software_version": "lab-2.0",
                "uptime_seconds": 3720, "sip_registration": "Registered", "sip_uri": "lab@tuyenquang.vn",
                "sip_reason": "", "ntp_status": "Synced", "active_calls": 0, "calls": []}

    def get_config(self, path: str = "") -> dict[str, str]:
        return {"SIP DisplayName": "Phòng họp Lab", "Time Zone": "Asia/Ho_Chi_Minh"}

    def apply_config(self, desired: dict[str, Any], check: bool = False) -> Change:
        return Change({"before": {}, "after": {}}, False)

    def command(self, name: str, **params: Any) -> dict[str, Any]:
        return {}

    def reboot(self) -> None:
        pass

    def upgrade_software(self, url: str, checksum: str = "") -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def lab_vendor() -> Iterator[type[LabProfile]]:
    profile.supported_vendors()  # the built-in vendors are loaded first
    register(LabProfile)
    previous = service.set_credential_source(lambda _session, _endpoint: DeviceLogin("admin", password="x"))
    try:
        yield LabProfile
    finally:
        LabProfile.fail_with = ""
        service.set_credential_source(previous)
        profile._REGISTRY.pop(LAB_VENDOR.lower(), None)


@pytest.fixture
def endpoint(session) -> Endpoint:
    return session.scalar(sa.select(Endpoint).where(Endpoint.vendor == "Cisco").order_by(Endpoint.id).limit(1))


def test_a_technician_asks_for_the_status_and_lands_on_a_page_that_polls_it(login, session, endpoint):
    client = login("technician")
    page = client.get(f"/devices/endpoints/{endpoint.id}")
    assert page.status_code == 200 and "Read status" in page.get_data(as_text=True)
    response = client.post(f"/devices/endpoints/{endpoint.id}/actions", data={"action": "status"})
    assert response.status_code == 303
    action = session.scalar(sa.select(DeviceAction).where(DeviceAction.endpoint_id == endpoint.id))
    assert response.headers["Location"].endswith(f"/devices/actions/{action.id}")
    assert (action.action, action.state, action.requested_by.email) == (ActionKind.STATUS, ActionState.QUEUED,
                                                                         "technician@example.com")
    message = session.scalar(sa.select(OutboxMessage).where(OutboxMessage.task == "devices.quick_action"))
    assert message.payload == {"action_id": action.id}
    again = client.post(f"/devices/endpoints/{endpoint.id}/actions", data={"action": "status"})
    assert again.headers["Location"] == response.headers["Location"], "a second click joins the waiting action"
    shown = client.get(f"/devices/actions/{action.id}")
    assert "Queued" in shown.get_data(as_text=True) and shown.headers["Refresh"] == "2"


def test_an_api_client_gets_202_with_the_address_of_the_action(app, session, endpoint):
    client = app.test_client()
    client.post("/login", data={"email": "admin@example.com", "password": PASSWORD})
    response = client.post(f"/devices/endpoints/{endpoint.id}/actions", json={"action": "fetch_config"},
                           headers={"Accept": "application/json"})
    assert response.status_code == 202
    body = response.get_json()
    assert body["state"] == "queued" and body["action"] == "fetch_config"
    assert response.headers["Location"] == body["url"]
    polled = client.get(body["url"], headers={"Accept": "application/json"}).get_json()
    assert polled["id"] == body["id"] and polled["result"] is None


def test_only_technicians_and_admins_act_on_devices(login, endpoint):
    client = login("viewer")
    assert client.get(f"/devices/endpoints/{endpoint.id}").status_code == 403
    assert client.post(f"/devices/endpoints/{endpoint.id}/actions", data={"action": "status"}).status_code == 403
    assert client.get("/devices/host-keys").status_code == 403


def test_an_endpoint_that_cannot_be_reached_or_an_unknown_action_is_refused_with_the_reason(login, session, endpoint):
    client = login("technician")
    bad = client.post(f"/devices/endpoints/{endpoint.id}/actions", data={"action": "reboot"})
    assert bad.status_code == 422 and "Unknown device action" in bad.get_data(as_text=True)
    endpoint.mgmt_address = ""
    session.flush()
    assert "no management address" in client.get(f"/devices/endpoints/{endpoint.id}").get_data(as_text=True)
    refused = client.post(f"/devices/endpoints/{endpoint.id}/actions", data={"action": "status"})
    assert refused.status_code == 422 and "no management address" in refused.get_data(as_text=True)
    endpoint.mgmt_address, endpoint.vendor = "198.18.0.2", "Polycom"
    session.flush()
    unknown = client.post(f"/devices/endpoints/{endpoint.id}/actions", data={"action": "status"})
    assert unknown.status_code == 422 and "Polycom" in unknown.get_data(as_text=True)
    assert session.scalar(sa.select(sa.func.count()).select_from(DeviceAction)) == 0


def test_the_worker_records_the_result_which_the_page_then_shows(login, session, endpoint, lab_vendor):
    endpoint.vendor = LAB_VENDOR
    session.flush()
    client = login("technician")
    for kind in ("status", "fetch_config"):
        client.post(f"/devices/endpoints/{endpoint.id}/actions", data={"action": kind})
    actions = list(session.scalars(sa.select(DeviceAction).order_by(DeviceAction.id)))
    for action in actions:
        service.run_quick_action(action.id)
    session.expire_all()
    status, config = (session.get(DeviceAction, a.id) for a in actions)
    assert status.state == ActionState.SUCCEEDED and status.result["software_version"] == "lab-2.0"
    assert status.started_at <= status.finished_at
    assert config.result == {"config": {"SIP DisplayName": "Phòng họp Lab", "Time Zone": "Asia/Ho_Chi_Minh"}}
    page = client.get(f"/devices/actions/{status.id}")
    text = page.get_data(as_text=True)
    assert "Succeeded" in text and "lab-2.0" in text and "1 h 2 min" in text and "Refresh" not in page.headers
    overview = client.get(f"/devices/endpoints/{endpoint.id}").get_data(as_text=True)
    assert "lab-2.0" in overview and "Phòng họp Lab" in overview


def test_a_device_error_is_recorded_on_the_action_and_shown(login, session, endpoint, lab_vendor):
    endpoint.vendor = LAB_VENDOR
    session.flush()
    lab_vendor.fail_with = "Xã Lăng Can did not answer within 10 s."
    client = login("technician")
    client.post(f"/devices/endpoints/{endpoint.id}/actions", data={"action": "status"})
    action = session.scalar(sa.select(DeviceAction))
    service.run_quick_action(action.id)
    service.run_quick_action(action.id)  # a second hand-off of the same message does nothing
    session.expire_all()
    action = session.get(DeviceAction, action.id)
    assert action.state == ActionState.FAILED and action.error == "Xã Lăng Can did not answer within 10 s."
    assert "did not answer within 10 s" in client.get(f"/devices/actions/{action.id}").get_data(as_text=True)


def test_a_technician_accepts_a_pending_host_key_after_comparing_its_fingerprint(login, session, endpoint):
    pending = HostKey(address=endpoint.mgmt_address, port=endpoint.mgmt_port, key_type="ssh-ed25519",
                      fingerprint="SHA256:" + "A" * 43)
    session.add(pending)
    session.flush()
    client = login("technician")
    page = client.get("/devices/host-keys").get_data(as_text=True)
    assert pending.fingerprint in page and endpoint.room_name in page
    stale = client.post(f"/devices/host-keys/{pending.id}/accept", data={"fingerprint": "SHA256:other"})
    assert stale.status_code == 302 and pending.state == HostKeyState.PENDING
    accepted = client.post(f"/devices/host-keys/{pending.id}/accept", data={"fingerprint": pending.fingerprint})
    assert accepted.status_code == 302
    session.refresh(pending)
    assert pending.state == HostKeyState.ACCEPTED and pending.accepted_by.email == "technician@example.com"
    entry = session.scalar(sa.select(AuditEntry).where(AuditEntry.object_type == "HostKey",
                                                       AuditEntry.action == "update"))
    assert entry.actor == "technician@example.com" and entry.after["state"] == "accepted"
    assert "No key is waiting." in client.get("/devices/host-keys").get_data(as_text=True)
    client.post(f"/devices/host-keys/{pending.id}/forget")
    assert session.scalar(sa.select(sa.func.count()).select_from(HostKey)) == 0


# ---------------------------------------------------------------- the whole way, on a real queue and real SSH

def _wait_finished(app: Any, action_id: int, seconds: float = 30) -> DeviceAction:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with app.app_context():
            action = db.session.get(DeviceAction, action_id)
            db.session.remove()
        if action.finished:
            return action
        time.sleep(0.1)
    raise AssertionError(f"device action {action_id} did not finish within {seconds} s")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_quick_action_goes_through_the_outbox_and_the_queue_to_the_endpoint(backend, fresh_app, ssh_hosts):
    (host,) = ssh_hosts(1, "xapi")
    app = fresh_app(backend, QUEUE_NAME=f"vcops-test-{uuid.uuid4().hex[:8]}", DEVICE_CONNECT_TIMEOUT=5,
                    DEVICE_COMMAND_TIMEOUT=5)
    configure_queue(app)
    previous = service.set_credential_source(lambda _s, _e: DeviceLogin(host.username, password=host.password))
    consumer = huey.create_consumer(workers=1, worker_type="thread", periodic=False)
    consumer.start()
    try:
        with app.app_context():
            with commit_scope() as session:
                level = Level(code="commune", name="Xã", rank=1)
                site = Site(code="TQ-LB-LC", name="Xã Lăng Can", level=level)
                endpoint = Endpoint(site=site, room_name="Hội trường xã", vendor="Cisco", model="Room Kit",
                                    mgmt_address=host.address, mgmt_port=22)
                user = create_user(session, "kythuat@example.com", Role.TECHNICIAN, PASSWORD)
                session.add_all([level, site, endpoint])
                session.flush()
                first = service.request_action(session, endpoint, ActionKind.STATUS, user)
            db.session.remove()
        failed = _wait_finished(app, first.id)
        assert failed.state == ActionState.FAILED
        assert failed.error.startswith(f"First contact with {host.address}: fingerprint "
                                       f"{host.host_key_fingerprint()} awaits")
        client = app.test_client()
        client.post("/login", data={"email": "kythuat@example.com", "password": PASSWORD})
        page = client.get(f"/devices/actions/{first.id}").get_data(as_text=True)
        assert host.host_key_fingerprint() in page and "Accept" in page
        with app.app_context():
            key = db.session.scalar(sa.select(HostKey))
            db.session.remove()
        client.post(f"/devices/host-keys/{key.id}/accept", data={"fingerprint": key.fingerprint})
        asked = client.post(f"/devices/endpoints/{endpoint.id}/actions", data={"action": "status"})
        second_id = int(asked.headers["Location"].rsplit("/", 1)[1])
        done = _wait_finished(app, second_id)
        assert done.state == ActionState.SUCCEEDED, done.error
        assert done.result["software_version"] == "ce9.15.3.17"
        assert done.result["serial"] == f"FOC{host.index:05d}SIM"
        assert "ce9.15.3.17" in client.get(f"/devices/actions/{second_id}").get_data(as_text=True)
    finally:
        consumer.stop(graceful=True)
        huey.flush()
        service.set_credential_source(previous)
