"""The firmware store: a technician uploads an image and VCOps records its SHA-256; devices fetch it by a
link signed for that image; the upgrade playbook checks the checksum before installing anything and stops
at the first endpoint that fails, so the second is never touched."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from app.auth.models import Role, User
from app.auth.service import create_user
from app.db import commit_scope, db
from app.devices.models import HostKey, HostKeyState
from app.provisioning.firmware import service as firmware
from app.provisioning.firmware.models import FirmwareImage
from app.provisioning.models import JobState
from app.sites.models import Endpoint
from tests.playbooks_linux.conftest import HAS_ANSIBLE, PLAYBOOKS, Bed
from tests.support.seeds import province_site

IMAGE = b"\x7fCE-IMAGE" + bytes(range(256)) * 400
PASSWORD = "correct horse battery"


@pytest.fixture
def store(fresh_app, tmp_path):
    app = fresh_app("sqlite", PLAYBOOK_DIR=str(PLAYBOOKS), JOB_WORK_DIR=str(tmp_path / "work"),
                    WTF_CSRF_ENABLED=False)
    with app.app_context():
        with commit_scope() as session:
            for role in (Role.TECHNICIAN, Role.VIEWER):
                create_user(session, f"{role.value}@example.com", role, PASSWORD)
        db.session.remove()
    return app


def _login(app, role: Role):
    client = app.test_client()
    response = client.post("/login", data={"email": f"{role.value}@example.com", "password": PASSWORD})
    assert response.status_code in (302, 303), response.status_code
    return client


def _upload(client, version="ce11.14.2.3", data=IMAGE, name="cmterm-s53200ce11_14_2_3.k4.cop.sha512"):
    return client.post("/firmware/upload", data={"vendor": "Cisco", "model": "Room Kit", "version": version,
                                                 "file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_a_technician_uploads_an_image_and_vcops_records_its_sha256(store):
    tech = _login(store, Role.TECHNICIAN)
    response = _upload(tech)
    assert response.status_code == 302, response.get_data(as_text=True)
    page = tech.get(response.headers["Location"]).get_data(as_text=True)
    digest = hashlib.sha256(IMAGE).hexdigest()
    assert digest in page and "ce11.14.2.3" in page
    with store.app_context():
        image = db.session.scalars(sa.select(FirmwareImage)).one()
        assert (image.vendor, image.size, image.sha256) == ("cisco", len(IMAGE), digest)
        path = firmware.image_path(image)
        assert path.read_bytes() == IMAGE and path.parent.name == "firmware" and image.filename not in path.name
        assert not [p for p in path.parent.iterdir() if p.name.startswith(".upload-")]
        db.session.remove()

    again = _upload(tech)
    assert again.status_code == 409 and "stored already" in again.get_data(as_text=True)
    empty = _upload(tech, version="ce11.15", data=b"")
    assert empty.status_code == 422 and "empty" in empty.get_data(as_text=True)
    assert len(list(path.parent.iterdir())) == 1, "refused uploads leave no file behind"

    viewer = _login(store, Role.VIEWER)
    assert viewer.get("/firmware/").status_code == 200
    assert _upload(viewer, version="ce11.16").status_code == 403


def test_devices_fetch_an_image_only_by_its_signed_link(store):
    tech = _login(store, Role.TECHNICIAN)
    _upload(tech)
    with store.test_request_context():
        image = db.session.scalars(sa.select(FirmwareImage)).one()
        token = firmware.download_token(image)
        db.session.remove()
    anonymous = store.test_client()
    fetched = anonymous.get(f"/firmware/signed/{token}/image.cop")
    assert fetched.status_code == 200 and fetched.data == IMAGE
    assert fetched.headers["X-Checksum-SHA256"] == hashlib.sha256(IMAGE).hexdigest()
    assert anonymous.get(f"/firmware/signed/{token[:-2]}xx/image.cop").status_code == 404
    # Without the signed link, the image's own address is for people logged in: a browser is sent to log in.
    unsigned = anonymous.get(f"/firmware/{image.id}/file")
    assert unsigned.status_code == 302 and unsigned.headers["Location"].startswith("/login")
    assert IMAGE not in unsigned.data


def _serve(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.mark.skipif(not HAS_ANSIBLE, reason="ansible-playbook is not installed beside the test's Python")
def test_a_wrong_checksum_stops_the_upgrade_at_the_first_endpoint_before_anything_is_installed(store):
    tech = _login(store, Role.TECHNICIAN)
    _upload(tech)
    with store.app_context():
        with commit_scope() as session:
            site = province_site(session, "Tuyên Quang")
            # Addresses in the test range that nothing answers: the run must never get as far as the devices
            # (their keys are "accepted" so that the job is not refused before the checksum is checked).
            for room, address in (("Phong 1", "198.18.3.250"), ("Phong 2", "198.18.3.254")):
                session.add(Endpoint(site_id=site.id, room_name=room, vendor="cisco", mgmt_address=address))
                session.add(HostKey(address=address, port=22, key_type="ssh-ed25519", state=HostKeyState.ACCEPTED,
                                    fingerprint="SHA256:" + hashlib.sha256(address.encode()).hexdigest()[:43]))
        user_id = db.session.scalar(sa.select(User.id).where(User.email == "technician@example.com"))
        db.session.remove()
    server, thread = _serve(store)
    try:
        with store.test_request_context(base_url=f"http://127.0.0.1:{server.server_port}"):
            image = db.session.scalars(sa.select(FirmwareImage)).one()
            url = f"http://127.0.0.1:{server.server_port}/firmware/signed/{firmware.download_token(image)}/x.cop"
            wrong = dict(firmware.launch_vars(image, url), firmware_sha256=hashlib.sha256(b"another image").hexdigest())
            db.session.remove()
        job = Bed(store, user_id, {}).run("firmware_upgrade.yml", extra_vars=wrong)
    finally:
        server.shutdown()
        thread.join(timeout=5)
    bed = Bed(store, user_id, {})
    log = bed.log(job)
    assert job.state is JobState.FAILED, log
    assert "checksum" in log.lower(), log
    assert list(job.host_counts) == ["TQ.phong-1"], "the second endpoint was never tried"
    tasks = {e.task for e in bed.events(job.id) if e.type == "result"}
    assert "Install the image and wait for the endpoint to come back" not in tasks
    assert not list(Path(store.config["JOB_WORK_DIR"]).iterdir()), "the downloaded image went with the run"
