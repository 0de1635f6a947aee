"""Settings come from VCOPS_* variables with safe embedded defaults, and the README lists every one of them."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from app.config import PROJECT_ROOT, SETTINGS, Setting, load_config

README = PROJECT_ROOT / "README.md"


def _readme_default(setting: Setting) -> str:
    value = setting.default
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if value == "":
        return "(empty)"
    if isinstance(value, str) and value.startswith(str(PROJECT_ROOT)):
        # The default is absolute inside the checkout; the README names it relative to the checkout.
        return f"`./{Path(value).relative_to(PROJECT_ROOT)}`"
    return f"`{value}`"


def settings_table() -> str:
    """The README's settings table, as generated from app/config.py SETTINGS."""
    rows = ["| Variable | Default | What it does |", "| --- | --- | --- |"]
    for setting in SETTINGS:
        meaning = setting.help.replace("|", r"\|")
        rows.append(f"| `VCOPS_{setting.key}` | {_readme_default(setting)} | {meaning} |")
    return "\n".join(rows)


def test_readme_lists_every_setting_with_its_default():
    table = settings_table()
    assert table in README.read_text(encoding="utf-8"), (
        "README.md's settings table is out of date; replace it with the table below, which "
        "`PYTHONPATH=. .venv/bin/python -c 'from tests.test_config import settings_table as t; print(t())'` "
        "also prints:\n\n" + table)


def test_readme_lists_no_setting_that_does_not_exist():
    listed = {line.split("`")[1] for line in README.read_text(encoding="utf-8").splitlines()
              if line.startswith("| `VCOPS_")}
    assert listed == {f"VCOPS_{s.key}" for s in SETTINGS}


def test_a_port_that_is_not_a_number_is_refused_naming_the_variable(tmp_path):
    with pytest.raises(RuntimeError) as error:
        load_config(environ={"VCOPS_INSTANCE_PATH": str(tmp_path), "VCOPS_PORT": "abc"})
    assert "VCOPS_PORT" in str(error.value)
    assert "abc" in str(error.value)


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("Yes", True), ("ON", True),
    ("0", False), ("false", False), ("no", False), ("off", False), ("", False),
])
def test_booleans_accept_the_usual_spellings(tmp_path, raw, expected):
    config = load_config(environ={"VCOPS_INSTANCE_PATH": str(tmp_path), "VCOPS_EMBEDDED_WORKER": raw})
    assert config["EMBEDDED_WORKER"] is expected


def test_a_boolean_that_is_neither_true_nor_false_is_refused_naming_the_variable(tmp_path):
    with pytest.raises(RuntimeError, match="VCOPS_EMBEDDED_WORKER.*maybe"):
        load_config(environ={"VCOPS_INSTANCE_PATH": str(tmp_path), "VCOPS_EMBEDDED_WORKER": "maybe"})


def test_numbers_and_text_are_read_from_the_environment(tmp_path):
    config = load_config(environ={"VCOPS_INSTANCE_PATH": str(tmp_path), "VCOPS_PORT": "8080",
                                  "VCOPS_REDIS_URL": "redis://127.0.0.1:6379/3"})
    assert config["PORT"] == 8080
    assert config["REDIS_URL"] == "redis://127.0.0.1:6379/3"
    assert config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/3"


def test_the_embedded_defaults_keep_everything_in_the_instance_folder(tmp_path):
    instance = tmp_path / "instance"
    config = load_config(environ={"VCOPS_INSTANCE_PATH": str(instance)})
    assert config["DATABASE_URL"] == f"sqlite:///{instance / 'vcops.db'}"
    assert config["REDIS_URL"] == ""
    # Shared by every worker on the machine, never one count per worker in memory.
    assert config["RATELIMIT_STORAGE_URI"] == f"vcops+sqlite:///{instance.resolve() / 'ratelimits.db'}"
    assert config["PORT"] == 5000
    assert config["DEFAULT_LANGUAGE"] == "vi"
    assert config["TIMEZONE"] == "Asia/Ho_Chi_Minh"
    assert instance.is_dir()


def test_the_generated_secret_key_is_private_to_its_owner_and_survives_a_restart(tmp_path):
    first = load_config(environ={"VCOPS_INSTANCE_PATH": str(tmp_path)})["SECRET_KEY"]
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert load_config(environ={"VCOPS_INSTANCE_PATH": str(tmp_path)})["SECRET_KEY"] == first


def test_a_secret_key_from_the_environment_is_used_and_no_key_file_is_written(tmp_path):
    config = load_config(environ={"VCOPS_INSTANCE_PATH": str(tmp_path), "VCOPS_SECRET_KEY": "from-env"})
    assert config["SECRET_KEY"] == "from-env"
    assert not (tmp_path / "secret_key").exists()


def test_an_https_base_url_makes_the_cookies_secure(tmp_path):
    config = load_config(environ={"VCOPS_INSTANCE_PATH": str(tmp_path), "VCOPS_BASE_URL": "https://vcops.example"})
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["REMEMBER_COOKIE_SECURE"] is True


def test_a_plain_http_base_url_keeps_cookies_usable_on_the_embedded_server(tmp_path):
    config = load_config(environ={"VCOPS_INSTANCE_PATH": str(tmp_path)})
    assert config["SESSION_COOKIE_SECURE"] is False
    assert config["SESSION_COOKIE_HTTPONLY"] is True


def test_explicit_overrides_win_over_the_environment(tmp_path):
    config = load_config({"PORT": 6000}, environ={"VCOPS_INSTANCE_PATH": str(tmp_path), "VCOPS_PORT": "7000"})
    assert config["PORT"] == 6000


def test_the_app_without_test_config_is_not_in_testing_mode(tmp_path, monkeypatch):
    for setting in SETTINGS:
        monkeypatch.delenv(f"VCOPS_{setting.key}", raising=False)
    monkeypatch.setenv("VCOPS_INSTANCE_PATH", str(tmp_path))
    app = create_app()
    try:
        assert not app.testing
        assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'vcops.db'}"
    finally:
        app.extensions["vcops_engine"].dispose()


def test_the_factory_takes_the_settings_it_is_given_over_the_environment(tmp_path, monkeypatch):
    # What the test suite relies on: create_app(config) wins over VCOPS_* (here all pointing elsewhere), for the
    # app's settings, its instance folder and the database its engine opens.
    for setting in SETTINGS:
        monkeypatch.delenv(f"VCOPS_{setting.key}", raising=False)
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("VCOPS_INSTANCE_PATH", str(elsewhere))
    monkeypatch.setenv("VCOPS_DATABASE_URL", f"sqlite:///{elsewhere / 'env.db'}")
    monkeypatch.setenv("VCOPS_SECRET_KEY", "from-env")
    monkeypatch.setenv("VCOPS_DEFAULT_LANGUAGE", "vi")
    given = tmp_path / "given"
    url = f"sqlite:///{given / 'given.db'}"
    app = create_app({"INSTANCE_PATH": str(given), "DATABASE_URL": url, "SECRET_KEY": "given",
                      "DEFAULT_LANGUAGE": "en"})
    try:
        assert app.instance_path == str(given)
        assert (app.config["DATABASE_URL"], app.secret_key, app.config["DEFAULT_LANGUAGE"]) == (url, "given", "en")
        assert str(app.extensions["vcops_engine"].url) == url
        assert not app.testing  # nor does the factory turn on testing by itself
    finally:
        app.extensions["vcops_engine"].dispose()


KEYS_WARNING = "device credentials are encrypted with keys kept in"


@pytest.mark.parametrize(("settings", "warned"), [
    ({}, False),  # the embedded demo: SQLite, served on this machine
    ({"VCOPS_DATABASE_URL": "postgresql+psycopg://vcops@db.example.vn/vcops"}, True),
    ({"VCOPS_BASE_URL": "https://vcops.tuyenquang.example.vn"}, True),
    ({"VCOPS_BASE_URL": "https://vcops.tuyenquang.example.vn", "VCOPS_CREDENTIAL_KEYS": "from-a-secrets-file"},
     False),
])
def test_keys_generated_beside_the_data_outside_the_demo_are_warned_about(tmp_path, caplog, settings, warned):
    with caplog.at_level(logging.WARNING, logger="app.config"):
        load_config(environ={"VCOPS_INSTANCE_PATH": str(tmp_path), **settings})
    messages = [r.getMessage() for r in caplog.records if KEYS_WARNING in r.getMessage()]
    assert bool(messages) is warned
    if warned:
        assert str(tmp_path / "credential_keys") in messages[0] and "VCOPS_CREDENTIAL_KEYS" in messages[0]


def test_vcops_warns_at_start_when_it_would_keep_the_keys_beside_a_served_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VCOPS_")}
    env.update(VCOPS_INSTANCE_PATH=str(tmp_path / "instance"), VCOPS_BASE_URL="https://vcops.tuyenquang.example.vn")
    vcops = Path(sys.executable).parent / "vcops"
    done = subprocess.run([str(vcops), "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert KEYS_WARNING in done.stderr


def test_an_instance_folder_made_by_an_earlier_version_is_made_private_at_start(tmp_path):
    instance = tmp_path / "instance"
    (instance / "outbox").mkdir(parents=True, mode=0o755)
    instance.chmod(0o755)
    for name in ("vcops.db", "vcops.db-wal", "queue.db", "credential_keys"):
        (instance / name).write_text("")
        (instance / name).chmod(0o644)
    (tmp_path / "neighbour.txt").write_text("not ours")
    (tmp_path / "neighbour.txt").chmod(0o644)
    load_config(environ={"VCOPS_INSTANCE_PATH": str(instance)})
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    assert stat.S_IMODE((instance / "outbox").stat().st_mode) == 0o700
    for name in ("vcops.db", "vcops.db-wal", "queue.db", "credential_keys", "secret_key"):
        assert stat.S_IMODE((instance / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((tmp_path / "neighbour.txt").stat().st_mode) == 0o644  # outside the instance: left alone
