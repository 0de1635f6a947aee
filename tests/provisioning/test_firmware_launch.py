"""The launch form of a firmware upgrade template offers the uploaded images: the technician picks one and the
job gets the variables firmware_upgrade.yml expects (a link signed for that image, its SHA-256, its version),
laid over the other extra variables; without a chosen image the launch is refused, naming the field."""

from __future__ import annotations

import html
import io
from urllib.parse import urlsplit

import sqlalchemy as sa

from app.db import commit_scope
from app.provisioning import service
from app.provisioning.firmware import service as firmware
from app.provisioning.models import Job

IMAGE = b"\x7fCE-IMAGE ce11.14.2.3" * 1000


def test_a_technician_picks_an_uploaded_image_and_the_job_gets_its_link_checksum_and_version(app, session, login):
    with commit_scope():
        image = firmware.store_image(session, io.BytesIO(IMAGE), "cmterm-s53200ce11_14_2_3.k4.cop.sha512", "Cisco",
                                     "Room Kit", "ce11.14.2.3", None)
        upgrade = service.save_template(session, {"name": "Firmware upgrade", "playbook": "firmware_upgrade.yml",
                                                  "default_limit": "endpoints"})
        ping = service.save_template(session, {"name": "Ping all", "playbook": "ping.yml"})
    client = login("technician")
    url = f"/jobs/templates/{upgrade.id}/launch"

    page = client.get(url).get_data(as_text=True)
    assert 'name="firmware_image"' in page and "cisco Room Kit ce11.14.2.3" in page
    assert 'name="firmware_image"' not in client.get(f"/jobs/templates/{ping.id}/launch").get_data(as_text=True)

    before = session.scalar(sa.select(sa.func.count()).select_from(Job))
    missing = client.post(url, data={"limit": "endpoints", "extra_vars": "{}"})
    assert missing.status_code == 422
    assert "Choose the firmware image to install." in html.unescape(missing.get_data(as_text=True))
    unknown = client.post(url, data={"limit": "endpoints", "extra_vars": "{}", "firmware_image": "999999"})
    assert unknown.status_code == 422
    assert session.scalar(sa.select(sa.func.count()).select_from(Job)) == before

    launched = client.post(url, data={"limit": "endpoints", "firmware_image": str(image.id),
                                      "extra_vars": '{"firmware_boot_timeout": 900, "firmware_version": "x"}'})
    assert launched.status_code == 302, html.unescape(launched.get_data(as_text=True))[:1500]
    job = session.scalars(sa.select(Job).order_by(Job.id.desc())).first()
    assert job.playbook == "firmware_upgrade.yml"
    assert job.extra_vars["firmware_sha256"] == image.sha256 and job.extra_vars["firmware_version"] == "ce11.14.2.3"
    assert job.extra_vars["firmware_boot_timeout"] == 900, "the other variables are kept"
    link = urlsplit(job.extra_vars["firmware_url"])
    assert link.path.startswith("/firmware/signed/") and link.path.endswith("/cmterm-s53200ce11_14_2_3.k4.cop.sha512")
    fetched = app.test_client().get(link.path)  # as a device does: no login, only the signed link
    assert fetched.status_code == 200 and fetched.data == IMAGE
