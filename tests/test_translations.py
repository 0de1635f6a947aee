"""Vietnamese is the interface's first language: every string the interface shows has a translation."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "app" / "translations" / "vi" / "LC_MESSAGES" / "messages.po"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "_l": None}


def _extracted() -> dict[str, str]:
    found: dict[str, str] = {}
    for folder in ("app", "templates"):
        for filename, _lineno, message, _comments, _context in extract_from_dir(
                str(ROOT / folder), keywords=KEYWORDS,
                method_map=[("**.py", "python"), ("**.html", "jinja2"), ("**.txt", "jinja2")]):
            msgid = message[0] if isinstance(message, tuple) else message  # a plural is one entry
            if msgid:
                found.setdefault(msgid, f"{folder}/{filename}")
    return found


def test_every_interface_string_has_a_vietnamese_translation():
    with CATALOG.open("rb") as fh:
        catalog = read_po(fh)
    missing = []
    for msgid, where in sorted(_extracted().items()):
        message = catalog.get(msgid)
        translated = message is not None and not message.fuzzy and (
            all(message.string) if isinstance(message.string, tuple) else bool(message.string))
        if not translated:
            missing.append(f"{where}: {msgid!r}")
    assert not missing, "untranslated strings (run `make translations` and translate):\n" + "\n".join(missing)


def test_the_login_page_is_in_vietnamese_by_default_and_in_english_on_request(fresh_app):
    client = fresh_app("sqlite", DEFAULT_LANGUAGE="vi").test_client()
    page = client.get("/login").get_data(as_text=True)
    assert 'lang="vi"' in page and "Đăng nhập" in page
    client.get("/language/en")
    page = client.get("/login").get_data(as_text=True)
    assert 'lang="en"' in page and "Log in" in page


def test_api_errors_come_in_the_language_the_client_asks_for(fresh_app):
    client = fresh_app("sqlite", DEFAULT_LANGUAGE="vi").test_client()
    english = client.get("/api/v1/sites", headers={"Accept-Language": "en"}).get_json()["error"]["message"]
    vietnamese = client.get("/api/v1/sites").get_json()["error"]["message"]
    assert english.startswith("Log in") and vietnamese != english
