"""The embedded mode, served as `make run` serves it (real gunicorn workers, SQLite, the queue worker beside
them), is as strict as a production deployment: the login limit holds across every worker, and nothing it
writes under the instance folder is readable by anyone but its owner."""

from __future__ import annotations

import collections
import http.cookiejar
import os
import re
import stat
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.config import SETTINGS
from tests.support.served import VCOPS, serving

STARTUP_SECONDS = 30
GUESSES = 30
WEB_WORKERS = 4


@contextmanager
def _served(tmp_path: Path, **settings: str) -> Iterator[str]:
    """`vcops serve --workers 4` on a migrated instance of its own, in its own session; killed afterwards."""
    assert VCOPS.exists(), f"{VCOPS} is missing: install the package (make test does)"
    env = {k: v for k, v in os.environ.items() if not any(k == f"VCOPS_{s.key}" for s in SETTINGS)}
    env.update(VCOPS_INSTANCE_PATH=str(tmp_path / "instance"), PYTHONUNBUFFERED="1",
               **{f"VCOPS_{key}": value for key, value in settings.items()})
    done = subprocess.run([str(VCOPS), "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with serving(env, tmp_path / "serve.log", "--workers", str(WEB_WORKERS)) as state:
        proc, url, log = state["proc"], state["url"], state["log"]
        deadline = time.monotonic() + STARTUP_SECONDS
        while _status(f"{url}/healthz") not in (200, 503):
            assert proc.poll() is None and time.monotonic() < deadline, f"never answered; log:\n{log.read_text()}"
            time.sleep(0.3)
        yield url


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0  # not listening yet


def _wrong_password(url: str) -> int:
    """One guess as a browser makes it: the login page (its CSRF token and cookie), then the form."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(f"{url}/login", timeout=10) as page:
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.read().decode()).group(1)
    form = urllib.parse.urlencode({"csrf_token": token, "email": "admin@example.com",
                                   "password": "a wrong guess"}).encode()
    try:
        with opener.open(f"{url}/login", data=form, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _guess_at_once(url: str, guesses: int) -> collections.Counter[int]:
    # Several at a time, as a guessing script does: the workers answer them side by side.
    with ThreadPoolExecutor(max_workers=8) as pool:
        return collections.Counter(pool.map(lambda _: _wrong_password(url), range(guesses)))


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The embedded mode with its defaults: the login limit of the settings table, the queue worker beside."""
    tmp = tmp_path_factory.mktemp("served")
    with _served(tmp) as url:
        yield url, tmp / "instance"


def test_a_guesser_gets_five_tries_a_minute_however_many_workers_answer(embedded):
    url, _instance = embedded
    started = time.monotonic()
    answers = _guess_at_once(url, GUESSES)
    assert time.monotonic() - started < 50  # all inside one minute's window
    # 5 wrong passwords are answered as such; the 6th and every later one are refused, whichever worker takes it.
    assert answers == {401: 5, 429: GUESSES - 5}, answers


def test_the_hourly_login_limit_also_holds_across_workers(tmp_path):
    # The hourly limit alone (a minute's limit above it), so that it is reached within seconds.
    with _served(tmp_path, LOGIN_RATE_LIMIT="100 per minute;20 per hour", EMBEDDED_WORKER="false") as url:
        answers = _guess_at_once(url, GUESSES)
    assert answers == {401: 20, 429: GUESSES - 20}, answers


def test_what_the_served_instance_writes_is_its_owners_only(embedded):
    url, instance = embedded
    deadline = time.monotonic() + STARTUP_SECONDS
    while _status(f"{url}/healthz") != 200:  # the queue worker has checked in: it opened queue.db
        assert time.monotonic() < deadline, "the queue worker never checked in"
        time.sleep(0.3)
    _wrong_password(url)  # a rate-limit count written
    loose: dict[str, str] = {}
    paths: list[Path] = [instance, *instance.rglob("*")]
    for path in paths:
        mode = stat.S_IMODE(path.lstat().st_mode)
        expected: Callable[[int], bool] = (lambda m: m == 0o700) if path.is_dir() else (lambda m: m & 0o077 == 0)
        if not expected(mode):
            loose[str(path.relative_to(instance.parent))] = oct(mode)
    assert loose == {}, f"readable by others: {loose}"
    names = {p.name for p in paths}
    assert {"vcops.db", "queue.db", "secret_key", "ratelimits.db", "metrics"} <= names, names
