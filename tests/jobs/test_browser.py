"""The job page in a real browser (Playwright driving Debian's chromium): a technician launches a job and
sees its log grow line by line while it runs, without reloading, then its final state.

The app is served by werkzeug in a thread on a database of its own, and the job runs on a real huey
consumer in a thread, as in production with the embedded queue."""

from __future__ import annotations

import re
import shutil
import sys
import threading
import uuid
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app.tasks import configure_queue, huey
from tests.jobs.conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _playwright():
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    if not (Path(sys.executable).parent / "ansible-playbook").exists():
        pytest.skip("ansible-playbook is not installed beside the test's Python")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the Python package playwright is not installed (pip install playwright)")
    return sync_playwright


@pytest.fixture
def served(make_bed):
    """(bed, base URL): the app on a free port, with a huey consumer working its queue."""
    bed = make_bed("sqlite", QUEUE_NAME=f"vcops-browser-{uuid.uuid4().hex[:8]}")
    configure_queue(bed.app)
    consumer = huey.create_consumer(workers=2, worker_type="thread", periodic=False)
    consumer.start()
    server = make_server("127.0.0.1", 0, bed.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="vcops-test-server", daemon=True)
    thread.start()
    try:
        yield bed, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        consumer.stop(graceful=True)
        huey.flush()


def test_technician_sees_a_new_log_line_appear_while_the_job_runs_then_its_final_state(served):
    sync_playwright = _playwright()
    bed, base = served
    template_id = bed.template("live_log.yml", default_limit="r1")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(f"{base}/login")
            page.fill("input[name=email]", "tech@example.com")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/login" not in url)

            page.goto(f"{base}/jobs/templates/{template_id}/launch")
            page.click("form.form button[type=submit]")
            page.wait_for_url(re.compile(r"/jobs/\d+$"))
            assert "second line" not in page.inner_text("#job-log")
            # Marks this page load: a reload would drop it.
            page.evaluate("window.vcopsLoaded = true")

            # The second line comes about three seconds after the first, with the job still running for
            # three more: it must arrive through the page's own polling, on this very load.
            page.wait_for_function(
                """() => document.getElementById('job-log').textContent.includes('second line from r1')
                         && window.vcopsLoaded === true
                         && document.querySelector('#job-state .job-state').dataset.state === 'running'""",
                timeout=45_000)
            assert "first line from r1" in page.inner_text("#job-log")

            page.wait_for_function(
                "() => document.querySelector('#job-state .job-state').dataset.state === 'succeeded'",
                timeout=45_000)
            page.wait_for_load_state()
            assert "r1" in page.inner_text("table.host-counts")
        finally:
            browser.close()
