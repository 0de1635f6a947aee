"""Credentials are stored encrypted under keys of their own, rotate to a new key, open for the device that
is assigned to them (the most specific assignment wins), and never show their secret on a page."""

from __future__ import annotations

import os
import stat

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from app.errors import Invalid, NotFound
from app.provisioning.credentials import service as vault
from app.provisioning.credentials.commands import credentials_cli
from app.provisioning.credentials.models import Credential
from app.sites.models import Endpoint, Site

SECRET = "Kx9-device-password-Qw"


def _stored(session, credential_id: int) -> str:
    return session.scalar(sa.select(Credential.secret_encrypted).where(Credential.id == credential_id))


def test_a_password_is_stored_encrypted_and_opens_for_its_endpoint(app, session):
    credential = vault.create_credential(session, "endpoints", "password", "admin", SECRET)
    vault.assign_credential(session, credential, "endpoint")
    assert SECRET not in _stored(session, credential.id)
    endpoint = session.scalars(sa.select(Endpoint)).first()
    login = vault.credential_for_endpoint(session, endpoint)
    assert (login.username, login.password, login.private_key) == ("admin", SECRET, "")
    assert SECRET not in repr(login)


def test_the_most_specific_assignment_wins_device_then_site_then_the_sites_above_then_the_default(session):
    endpoint = session.scalars(sa.select(Endpoint).join(Site).where(Site.parent_id.is_not(None))).first()
    site = endpoint.site
    above = site.parent
    made = {name: vault.create_credential(session, name, "password", name, f"{name}-secret-pw")
            for name in ("default", "above", "site", "device")}
    vault.assign_credential(session, made["default"], "endpoint")
    assert vault.credential_for_endpoint(session, endpoint).username == "default"
    vault.assign_credential(session, made["above"], "endpoint", site=above)
    assert vault.credential_for_endpoint(session, endpoint).username == "above"
    vault.assign_credential(session, made["site"], "endpoint", site=site)
    assert vault.credential_for_endpoint(session, endpoint).username == "site"
    vault.assign_credential(session, made["device"], "endpoint", device=endpoint)
    assert vault.credential_for_endpoint(session, endpoint).username == "device"
    # A second assignment of the same scope replaces the first.
    vault.assign_credential(session, made["default"], "endpoint", device=endpoint)
    assert vault.credential_for_endpoint(session, endpoint).username == "default"


def test_an_endpoint_without_a_credential_is_named_in_the_error(session):
    endpoint = session.scalars(sa.select(Endpoint)).first()
    with pytest.raises(NotFound, match=endpoint.room_name):
        vault.credential_for_endpoint(session, endpoint)


def test_an_ssh_key_is_checked_and_a_passphrase_protected_key_is_refused(session):
    key = ed25519.Ed25519PrivateKey.generate()
    plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                              serialization.NoEncryption()).decode()
    credential = vault.create_credential(session, "servers", "ssh_key", "deploy", plain.strip())
    assert vault.open_credential(credential).private_key == plain  # stored with its final newline
    locked = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                               serialization.BestAvailableEncryption(b"pass")).decode()
    with pytest.raises(Invalid, match="passphrase"):
        vault.create_credential(session, "locked", "ssh_key", "deploy", locked)
    with pytest.raises(Invalid, match="not a private key"):
        vault.create_credential(session, "junk", "ssh_key", "deploy", "ssh-ed25519 AAAA a public key")


def test_rotation_re_encrypts_under_the_newest_key_and_old_keys_open_secrets_until_then(app, session,
                                                                                      monkeypatch):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setitem(app.config, "CREDENTIAL_KEYS", old)
    credential = vault.create_credential(session, "rotating", "password", "admin", SECRET)
    before = _stored(session, credential.id)

    monkeypatch.setitem(app.config, "CREDENTIAL_KEYS", f"{new},{old}")
    assert vault.open_credential(credential).password == SECRET  # the old key still opens it
    assert vault.rotate_all(session) == (1, 0)  # the one stored secret re-encrypted, none current yet
    after = _stored(session, credential.id)
    assert after != before and vault.rotate_all(session) == (0, 1)  # a second run has nothing left to do

    monkeypatch.setitem(app.config, "CREDENTIAL_KEYS", new)  # the old key is gone: the new one suffices
    assert vault.open_credential(credential).password == SECRET
    monkeypatch.setitem(app.config, "CREDENTIAL_KEYS", old)
    with pytest.raises(vault.CredentialKeyError, match="no configured credential key"):
        vault.open_credential(credential)


def test_a_bad_key_is_refused_without_showing_it(app, monkeypatch):
    monkeypatch.setitem(app.config, "CREDENTIAL_KEYS", "not-a-key-at-all")
    with app.app_context(), pytest.raises(vault.CredentialKeyError) as refused:
        vault.vault()
    assert "key number 1" in str(refused.value) and "not-a-key-at-all" not in str(refused.value)


def test_the_embedded_key_is_generated_once_for_the_owner_only_and_redis_needs_keys_set(tmp_path):
    config = {"CREDENTIAL_KEYS": "", "REDIS_URL": "", "INSTANCE_PATH": str(tmp_path)}
    first = vault.configured_keys(config)
    assert vault.configured_keys(config) == first
    assert stat.S_IMODE(os.stat(tmp_path / vault.KEY_FILE).st_mode) == 0o600
    with pytest.raises(vault.CredentialKeyError, match="VCOPS_CREDENTIAL_KEYS must be set"):
        vault.configured_keys({**config, "REDIS_URL": "redis://127.0.0.1:6379/0"})


def test_the_rotate_command_re_encrypts_every_secret(fresh_app, monkeypatch):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app = fresh_app("sqlite", CREDENTIAL_KEYS=old)
    from app.db import commit_scope, db

    with app.app_context():
        with commit_scope() as session:
            credential = vault.create_credential(session, "cli", "password", "admin", SECRET)
        db.session.remove()
    env = {"VCOPS_INSTANCE_PATH": app.config["INSTANCE_PATH"], "VCOPS_DATABASE_URL": app.config["DATABASE_URL"],
           "VCOPS_CREDENTIAL_KEYS": f"{new},{old}", "VCOPS_SECRET_KEY": "x"}
    result = CliRunner().invoke(credentials_cli, ["rotate"], env=env)
    assert result.exit_code == 0, result.output
    assert "1 secrets re-encrypted" in result.output
    app.config["CREDENTIAL_KEYS"] = new
    with app.app_context():
        assert vault.open_credential(db.session.get(Credential, credential.id)).password == SECRET
        db.session.remove()
    assert len(CliRunner().invoke(credentials_cli, ["new-key"]).output.strip()) == 44


def test_credential_pages_never_show_a_secret(app, login, session):
    client = login("technician")
    response = client.post("/jobs/credentials/new", data={"name": "mcu", "kind": "password", "username": "admin",
                                                         "password": SECRET, "description": "bridges"})
    assert response.status_code == 302
    listing = client.get("/jobs/credentials")
    assert listing.status_code == 200 and "mcu" in listing.get_data(as_text=True)
    assert SECRET not in listing.get_data(as_text=True)
    # A refused form (the name is taken) is shown again without the secret just typed.
    again = client.post("/jobs/credentials/new", data={"name": "mcu", "kind": "ssh_key", "username": "admin",
                                                      "private_key": SECRET, "password": SECRET})
    assert again.status_code == 409  # the name is taken: a conflict with the existing credential
    body = again.get_data(as_text=True)
    assert "mcu" in body and SECRET not in body
    credential = session.scalar(sa.select(Credential).where(Credential.name == "mcu"))
    rotate = client.post(f"/jobs/credentials/{credential.id}/rotate", data={"password": SECRET + "2"})
    assert rotate.status_code == 302
    session.refresh(credential)
    assert vault.open_credential(credential).password == SECRET + "2"
    assert client.get(f"/jobs/credentials/{credential.id}/rotate").get_data(as_text=True).count(SECRET) == 0
    operator = app.test_client()
    operator.post("/login", data={"email": "operator@example.com", "password": "correct horse battery"})
    assert operator.get("/jobs/credentials").status_code == 403


def test_deleting_a_credential_lists_its_assignments_first_and_removes_them(app, login, session):
    from app.db import commit_scope
    from app.provisioning.credentials.models import CredentialAssignment

    with commit_scope():
        credential = vault.create_credential(session, "old routers", "password", "admin", SECRET)
        vault.assign_credential(session, credential, "link_router")
    client = login("technician")
    confirm = client.get(f"/jobs/credentials/{credential.id}/delete")
    assert confirm.status_code == 200 and "all link routers" in confirm.get_data(as_text=True)
    assert client.post(f"/jobs/credentials/{credential.id}/delete").status_code == 302
    assert session.get(Credential, credential.id) is None
    assert session.scalar(sa.select(CredentialAssignment).where(CredentialAssignment.scope_key == "link_router")) \
        is None
