"""A technician uploads a firmware image, launches firmware_upgrade.yml through the API against two simulated
endpoints and follows the job to its end: each endpoint reboots into the new version, one after the other; a
second run finds them at that version and changes nothing."""

from __future__ import annotations

import hashlib
import io
import threading
import time

import sqlalchemy as sa
from werkzeug.serving import make_server

from app.auth.models import User
from app.auth.service import create_token
from app.db import commit_scope, db
from app.provisioning import service
from app.provisioning.firmware import service as firmware
from app.provisioning.firmware.models import FirmwareImage
from app.provisioning.firmware.routes import signed_link
from tests.playbooks.conftest import Province, province  # noqa: F401 - province: a fixture
from tests.support.outbox import drain_outbox

IMAGE = b"\x7fCE-IMAGE" + hashlib.sha256(b"ce11.14.2.3").digest() * 4096
NEW_VERSION = "ce11.14.2.3"
FILENAME = "cmterm-s53200ce11_14_2_3.k4.cop.sha512"  # devices read the version from the file's name


def _serve(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def _work(app) -> threading.Thread:
    """A worker: carries out the queued outbox messages (the run) while the test follows the job."""
    thread = threading.Thread(target=drain_outbox, args=(app,), daemon=True)
    thread.start()
    return thread


def _follow(client, headers, job_id: int, seconds: float = 300) -> tuple[dict, list[dict]]:
    """Read the job's events as a client of the API does, until it says the job is finished."""
    events: list[dict] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        after = events[-1]["seq"] if events else 0
        page = client.get(f"/api/v1/jobs/{job_id}/events?after={after}", headers=headers).get_json()
        events += page["items"]
        if page["finished"]:
            return client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json(), events
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish within {seconds} s")


def test_a_technician_upgrades_two_endpoints_through_the_api_and_a_second_run_changes_nothing(province):  # noqa: F811
    bed: Province = province(2)
    app = bed.app
    assert {h.read_state()["software"]["version"] for h in bed.hosts} != {NEW_VERSION}

    web = app.test_client()
    assert web.post("/login", data={"email": "tech@example.com", "password": "correct horse battery"}
                    ).status_code == 302
    uploaded = web.post("/firmware/upload", content_type="multipart/form-data",
                        data={"vendor": "Cisco", "model": "", "version": NEW_VERSION,
                              "file": (io.BytesIO(IMAGE), FILENAME)})
    assert uploaded.status_code == 302, uploaded.get_data(as_text=True)[:800]
    with app.app_context():
        with commit_scope() as session:
            template = service.save_template(session, {"name": "Firmware", "playbook": "firmware_upgrade.yml"})
            token = create_token(session, session.get(User, bed.user_id), "tests")[1]
        template_id = template.id
        db.session.remove()
    headers = {"Authorization": f"Bearer {token}"}

    server, thread = _serve(app)  # the controller fetches the image from the app, by its signed link
    try:
        with app.test_request_context(base_url=f"http://127.0.0.1:{server.server_port}"):
            image = db.session.scalars(sa.select(FirmwareImage)).one()
            extra_vars = firmware.launch_vars(image, signed_link(image))
            db.session.remove()
        assert len(extra_vars["firmware_url"]) <= 255, "devices take URLs of at most 255 characters"

        runs = []
        for _ in range(2):
            launched = web.post("/api/v1/jobs", headers=headers,
                                json={"template_id": template_id, "extra_vars": extra_vars})
            assert launched.status_code == 202, launched.get_json()
            worker = _work(app)
            runs.append(_follow(web, headers, launched.get_json()["id"]))
            worker.join(timeout=60)
    finally:
        server.shutdown()
        thread.join(timeout=10)

    (first, events), (second, again) = runs
    log = "".join(e["stdout"] + "\n" for e in events)
    assert first["state"] == "succeeded", log
    for host, name in zip(bed.hosts, bed.names, strict=True):
        assert host.read_state()["software"]["version"] == NEW_VERSION
        assert first["host_counts"][name]["changed"] == 1 and first["host_counts"][name]["failed"] == 0
    installs = [e for e in events if e["type"] == "result" and e["task"].startswith("Install the image")]
    assert [e["host"] for e in installs] == bed.names and {e["status"] for e in installs} == {"changed"}
    confirmed = {e["host"] for e in events if e["type"] == "result" and e["task"] == "Confirm the new version"
                 and e["status"] == "ok"}
    assert confirmed == set(bed.names), "each endpoint reported the new version after its reboot"

    assert second["state"] == "succeeded", "".join(e["stdout"] + "\n" for e in again)
    assert sum(c["changed"] for c in second["host_counts"].values()) == 0
    again_installs = [e for e in again if e["type"] == "result" and e["task"].startswith("Install the image")]
    assert [(e["host"], e["status"]) for e in again_installs] == [(name, "ok") for name in bed.names]
