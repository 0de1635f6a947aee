"""Firmware images are larger than anything else technicians upload: the firmware route alone accepts bodies up to
FIRMWARE_MAX_MB (every other route keeps the app-wide limit), a larger image is refused with the limit named and
leaves no file behind, the form still needs its CSRF token, and an image streams to disk, hashed on the way,
without ever being held in the server's memory."""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import re
import threading
import tracemalloc
import urllib.parse
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from app.auth.models import Role
from app.auth.service import create_user
from app.db import commit_scope, db
from app.provisioning.firmware.models import FirmwareImage

PASSWORD = "correct horse battery"
MB = 1024 * 1024


@pytest.fixture
def firmware_app(fresh_app):
    def make(**config):
        app = fresh_app("sqlite", **config)
        with app.app_context():
            with commit_scope() as session:
                create_user(session, "technician@example.com", Role.TECHNICIAN, PASSWORD)
            db.session.remove()
        return app

    return make


def _token(page: str) -> str:
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert found, "the page carries a CSRF token"
    return found.group(1)


def _technician(app):
    client = app.test_client()
    token = _token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": "technician@example.com", "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
    return client


def _upload(client, data: bytes, version: str = "ce11.14.2.3", token: str | None = None):
    if token is None:
        token = _token(client.get("/firmware/upload").get_data(as_text=True))
    return client.post("/firmware/upload", content_type="multipart/form-data",
                       data={"csrf_token": token, "vendor": "cisco", "model": "", "version": version,
                             "file": (io.BytesIO(data), f"cmterm-s53200{version.replace('.', '_')}.k4.cop.sha512")})


def _files(app) -> list[Path]:
    folder = Path(app.config["INSTANCE_PATH"]) / "firmware"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_an_image_above_the_firmware_limit_is_refused_with_the_limit_named_and_leaves_no_file(firmware_app):
    app = firmware_app(FIRMWARE_MAX_MB=1, WTF_CSRF_ENABLED=True)
    tech = _technician(app)
    assert "Largest image accepted: 1 MB." in tech.get("/firmware/upload").get_data(as_text=True)

    response = _upload(tech, os.urandom(MB + MB // 2))
    page = response.get_data(as_text=True)
    assert response.status_code == 413 and "The image is larger than 1 MB." in page
    assert _files(app) == [], "nothing of the refused image is kept"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(FirmwareImage)) == 0
        db.session.remove()


def test_only_the_firmware_route_takes_bodies_above_the_app_wide_limit_and_it_still_checks_csrf(firmware_app):
    app = firmware_app(MAX_CONTENT_LENGTH=MB, FIRMWARE_MAX_MB=4, WTF_CSRF_ENABLED=True)
    tech = _technician(app)
    image = os.urandom(3 * MB)

    stored = _upload(tech, image)
    assert stored.status_code == 302, stored.get_data(as_text=True)[:800]
    with app.app_context():
        row = db.session.scalars(sa.select(FirmwareImage)).one()
        assert (row.size, row.sha256) == (len(image), hashlib.sha256(image).hexdigest())
        db.session.remove()
    assert [p.read_bytes() == image for p in _files(app)] == [True]

    # Every other route keeps the app's 1 MB.
    other = tech.post("/jobs/templates/new", data={"name": "x" * (2 * MB)})
    assert other.status_code == 413 and "larger than the 1 MB" in other.get_data(as_text=True)
    # The firmware form checks its CSRF token itself (the app-wide check leaves this route to it).
    forged = _upload(tech, os.urandom(1000), version="ce11.15.1.2", token="forged")
    assert forged.status_code == 422
    assert len(_files(app)) == 1


def _serve(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def _http_login(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = urllib.parse.urlencode({"email": "technician@example.com", "password": PASSWORD})
    conn.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    assert response.status in (302, 303)
    cookie = response.getheader("Set-Cookie") or ""
    conn.close()
    return cookie.split(";", 1)[0]


def test_a_large_image_streams_to_disk_hashed_on_the_way_never_whole_in_memory(firmware_app):
    app = firmware_app(FIRMWARE_MAX_MB=256, WTF_CSRF_ENABLED=False)
    size, chunk = 96 * MB, os.urandom(MB)
    server, thread = _serve(app)
    try:
        cookie = _http_login(server.server_port)
        boundary = "vcops-test-boundary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"vendor\"\r\n\r\ncisco\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\nce11.20.1.1\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s53200ce11_20_1_1.k4.cop\""
                f"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        digest = hashlib.sha256()
        tracemalloc.start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=120)
            conn.putrequest("POST", "/firmware/upload")
            conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
            conn.putheader("Content-Length", str(len(head) + size + len(tail)))
            conn.putheader("Cookie", cookie)
            conn.endheaders()
            conn.send(head)
            for _ in range(size // MB):
                digest.update(chunk)
                conn.send(chunk)
            conn.send(tail)
            response = conn.getresponse()
            response.read()
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert response.status == 302, response.status
    finally:
        server.shutdown()
        thread.join(timeout=10)
    with app.app_context():
        row = db.session.scalars(sa.select(FirmwareImage)).one()
        assert (row.size, row.sha256) == (size, digest.hexdigest())
        db.session.remove()
    assert peak < 16 * MB, f"the upload took {peak // MB} MB of the server's memory for a {size // MB} MB image"
    assert [p.stat().st_size for p in _files(app)] == [size]
