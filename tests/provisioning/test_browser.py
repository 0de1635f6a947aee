"""The job page in a real browser (Playwright driving Debian's chromium): a technician launches a job and
sees its log grow line by line while it runs, without reloading, then its final state.

The app is served by werkzeug in a thread on a database of its own (tests/browser.py), and the job runs on a
real huey consumer in a thread, as in production with the embedded queue."""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path

import pytest

from app.queue.tasks import configure_queue, huey
from tests.provisioning.conftest import PASSWORD
from tests.support.browser import logged_in_page
from tests.support.browser import served as served_app


def _ansible_or_skip() -> None:
    if not (Path(sys.executable).parent / "ansible-playbook").exists():
        pytest.skip("ansible-playbook is not installed beside the test's Python")


@pytest.fixture
def served(make_bed):
    """(bed, base URL): the app on a free port, with a huey consumer working its queue."""
    bed = make_bed("sqlite", QUEUE_NAME=f"vcops-browser-{uuid.uuid4().hex[:8]}")
    configure_queue(bed.app)
    consumer = huey.create_consumer(workers=2, worker_type="thread", periodic=False)
    consumer.start()
    try:
        with served_app(bed.app) as base:
            yield bed, base
    finally:
        consumer.stop(graceful=True)
        huey.flush()


def test_technician_sees_a_new_log_line_appear_while_the_job_runs_then_its_final_state(served):
    _ansible_or_skip()
    bed, base = served
    template_id = bed.template("live_log.yml", default_limit="r1")
    with logged_in_page(base, "tech@example.com", PASSWORD) as page:
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
