"""Configuration: embedded defaults, then VCOPS_* environment variables, then explicit overrides.

Every setting is listed in SETTINGS so the README table and the loader never disagree.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    key: str  # Flask config key; the environment variable is VCOPS_<key>
    default: Any
    help: str
    kind: type = str


SETTINGS: list[Setting] = [
    Setting("INSTANCE_PATH", str(PROJECT_ROOT / "instance"),
            "Folder for the SQLite database, queue, secret key and uploads."),
    Setting("DATABASE_URL", "", "SQLAlchemy URL; empty means SQLite at INSTANCE_PATH/vcops.db."),
    Setting("REDIS_URL", "",
            "Redis URL for the task queue (RedisHuey); empty means SqliteHuey at INSTANCE_PATH/queue.db."),
    Setting("SECRET_KEY", "",
            "Signs sessions and links; empty means a random key kept in INSTANCE_PATH/secret_key."),
    Setting("BASE_URL", "http://127.0.0.1:5000",
            "Public address of the app, used in links; https turns on Secure cookies."),
    Setting("HOST", "127.0.0.1", "Address `vcops serve` listens on."),
    Setting("PORT", 5000, "Port `vcops serve` listens on.", int),
    Setting("WEB_WORKERS", 2, "gunicorn worker processes started by `vcops serve`.", int),
    Setting("QUEUE_NAME", "vcops", "Name of the task queue; deployments sharing one Redis need different names."),
    Setting("QUEUE_WORKERS", 2, "Task-queue worker threads started by `vcops worker`.", int),
    Setting("EMBEDDED_WORKER", True, "`vcops serve` also starts a task-queue worker process.", bool),
    Setting("WORKER_STALE_SECONDS", 180,
            "/healthz reports the queue unhealthy when no worker checked in for this long.", int),
    Setting("LOGIN_RATE_LIMIT", "5 per minute;20 per hour", "Login attempts allowed per client address."),
    Setting("LOGIN_ACCOUNT_RATE_LIMIT", "30 per hour", "Failed login attempts (password or two-factor code) "
            "allowed per account, from all addresses together (above the per-address limit, so that one guesser "
            "meets that first and a spread-out one meets this)."),
    Setting("SESSION_IDLE_MINUTES", 120, "Minutes without a request after which a session ends (a lunch break or a "
            "long meeting; not for remembered sessions).", int),
    Setting("SESSION_LIFETIME_HOURS", 12, "Hours after login at which a session ends however busy (one working "
            "day: the next day starts with a login).", int),
    Setting("SESSION_REMEMBER_DAYS", 7, "Days a session lasts when \"remember me\" is ticked at login (it survives "
            "closing the browser; logout and a new password still end it).", int),
    Setting("TWO_FACTOR_REQUIRED_ROLES", "admin,technician", "Roles that must sign in with a second factor (TOTP), "
            "comma-separated; they set it up at their next login. Empty: optional for everyone."),
    Setting("RATELIMIT_STORAGE_URI", "", "Storage for rate limits, shared by every worker; empty means REDIS_URL "
            "if set, else the SQLite file INSTANCE_PATH/ratelimits.db."),
    Setting("DEFAULT_LANGUAGE", "vi", "Interface language when the user has not chosen one (vi or en)."),
    Setting("TIMEZONE", "Asia/Ho_Chi_Minh", "Time zone in which times are shown; they are stored in UTC."),
    Setting("PAGE_SIZE", 25, "Rows per page in lists.", int),
    Setting("LOG_LEVEL", "INFO", "Logging level."),
    Setting("PROXY_COUNT", 0, "Reverse proxies in front of the app whose X-Forwarded-* headers are trusted "
            "(for client addresses in rate limits and https links).", int),
    Setting("SMTP_HOST", "", "SMTP server for invitations; empty writes each mail as an .eml file to "
            "INSTANCE_PATH/outbox/ instead."),
    Setting("SMTP_PORT", 587, "SMTP port.", int),
    Setting("SMTP_USERNAME", "", "SMTP login; empty sends without logging in."),
    Setting("SMTP_PASSWORD", "", "SMTP password (kept out of logs)."),
    Setting("SMTP_STARTTLS", True, "Upgrade the SMTP connection with STARTTLS.", bool),
    Setting("SMTP_SSL", False, "Connect to the SMTP server over TLS from the start (port 465).", bool),
    Setting("SMTP_TIMEOUT", 30, "Seconds to wait for the SMTP server.", int),
    Setting("MAIL_FROM", "vanphong@tuyenquang.example.com",
            "The secretariat's mailbox: sender of invitations and ORGANIZER of the calendar invites."),
    Setting("MAIL_FROM_NAME", "Văn phòng UBND tỉnh", "Display name of the sender."),
    Setting("WORKDAY_START", "07:30", "Start of working hours (local) for suggested meeting slots."),
    Setting("WORKDAY_END", "17:00", "End of working hours (local) for suggested meeting slots."),
    Setting("WORKDAYS", "mon,tue,wed,thu,fri", "Working days for suggested meeting slots."),
    Setting("MAX_BOOKING_DAYS_AHEAD", 730, "Furthest a meeting may be booked ahead, in days.", int),
    Setting("DOCUMENT_MAX_MB", 25, "Largest meeting document accepted, in megabytes.", int),
    Setting("SIGNED_LINK_DAYS", 30, "Days a link in an invitation (documents, attendance) stays valid.", int),
    Setting("REPORT_ROAD_FACTOR", 1.3, "Reports: road distance over the straight line between two sites' "
            "coordinates.", float),
    Setting("REPORT_TRAVEL_SPEED_KMH", 40.0, "Reports: average travel speed (km/h) giving the travel time of a "
            "site whose time the province did not set.", float),
    Setting("REPORT_PEOPLE_PER_SITE", 3, "Reports: people each site would have sent to a meeting held in person "
            "(a meeting may set its own).", int),
    Setting("REPORT_COST_PER_KM", 3000.0, "Reports: travel cost per person and kilometre, in đồng.", float),
    Setting("REPORT_COST_PER_HOUR", 60000.0, "Reports: cost of an hour of a person's time on the road, in đồng.",
            float),
    Setting("REPORT_RECIPIENTS", "", "Reports: addresses, comma-separated, that receive the monthly report; empty "
            "keeps it in the app only."),
    Setting("REPORT_MONTHLY_HOUR", 7, "Reports: local hour of the first working day of a month from which last "
            "month's report is produced and mailed.", int),
    Setting("REPORT_HOLIDAYS", "", "Reports: days that are not working days, comma-separated, as YYYY-MM-DD (that "
            "day) or MM-DD (every year)."),
    Setting("REPORT_QUEUE_MONTHS", 3, "Reports: a report asked for over more months than this is built by the task "
            "queue and kept for download.", int),
    Setting("CREDENTIAL_KEYS", "", "Fernet keys encrypting device credentials, comma-separated, newest first (kept "
            "out of logs); empty means one key generated into INSTANCE_PATH/credential_keys (only without REDIS_URL)."),
    Setting("PLAYBOOK_DIR", str(PROJECT_ROOT / "playbooks"), "Folder of the playbooks that job templates may run."),
    Setting("JOB_WORK_DIR", "", "Folder for each job's private data directory (removed after the run); empty means "
            "the system's temporary folder."),
    Setting("JOB_TIMEOUT", 3600, "Seconds after which a running job is stopped (0: no limit).", int),
    Setting("JOB_FORKS", 25, "Hosts a job works on at once (Ansible's forks).", int),
    Setting("JOB_FACT_CACHE_SECONDS", 3600, "Seconds a host's gathered facts are reused by later jobs "
            "(INSTANCE_PATH/facts); 0 gathers them at every run.", int),
    Setting("DEVICE_CONNECT_TIMEOUT", 10, "Seconds to wait for a device's TCP connection, SSH handshake and login, "
            "each.", int),
    Setting("DEVICE_COMMAND_TIMEOUT", 30, "Seconds to wait for a device's whole answer to one request.", int),
    Setting("DEVICE_KEEPALIVE", 15, "Seconds between SSH keepalives on a device connection.", int),
    Setting("BRIDGE_CONNECT_TIMEOUT", 10, "Seconds to wait for a bridge's (MCU's) TCP connection and TLS handshake.",
            int),
    Setting("BRIDGE_READ_TIMEOUT", 30, "Seconds to wait for a bridge's answer to one API request.", int),
    Setting("CONFERENCE_LEAD_MINUTES", 0, "Minutes before a meeting's setup starts at which its conference is made "
            "on the bridge; 0 makes it when the meeting is booked.", int),
    Setting("CONFERENCE_RETRY_SECONDS", "30,60,120,300,600,900", "Seconds to wait before retrying a conference the "
            "bridge did not take, after the 1st, 2nd, ... failure in a row (the last one repeats)."),
    Setting("FIRMWARE_MAX_MB", 2048, "Largest firmware image a technician may upload, in megabytes.", int),
    Setting("PROBE_STEP_SECONDS", 60.0, "Seconds between the starts of two probe steps.", float),
    Setting("PROBE_ECHOES", 20, "ICMP echoes sent to each target per step (smokeping-style).", int),
    Setting("PROBE_ECHO_INTERVAL", 1.0, "Seconds between two echoes to the same target.", float),
    Setting("PROBE_TIMEOUT", 2.0, "Seconds to wait for an echo's reply (or a TCP connection) before counting it "
            "lost.", float),
    Setting("PROBE_CONCURRENCY", 1024, "Targets a probe agent measures at once (each holds its slot for "
            "ECHOES x ECHO_INTERVAL).", int),
    Setting("PROBE_HISTORY_MINUTES", 90, "Minutes of probe history kept in the database for the board.", int),
    Setting("ROLLUP_HOURLY_DAYS", 90, "Days of hourly probe rollups (per link and endpoint) kept for the reports; "
            "at least 90.", int),
    Setting("ROLLUP_DAILY_MONTHS", 13, "Whole local months of daily probe rollups kept before the current one, "
            "for the reports; at least 13.", int),
    Setting("AVAILABILITY_TARGET_DEDICATED", 99.5, "Availability (%) a link of the dedicated data network must "
            "reach in a month; the report lists those below it.", float),
    Setting("AVAILABILITY_TARGET_INTERNET", 99.0, "Availability (%) an internet link must reach in a month.",
            float),
    Setting("AVAILABILITY_TARGET_MOBILE_BACKUP", 98.0, "Availability (%) a mobile (4G) backup link must reach in "
            "a month.", float),
    Setting("PROBE_LISTEN", "127.0.0.1:9561", "Address where `vcops probe` serves its /metrics.", str),
    Setting("EXPORTER_LISTEN", "127.0.0.1:9560", "Address where `vcops exporter` serves its /metrics.", str),
    Setting("EXPORTER_HORIZON_HOURS", 12, "Hours ahead for which `vcops exporter` lists the meetings' sites.", int),
    Setting("METRICS_DIR", "", "Folder where web workers share their request metrics (prometheus-client "
            "multiprocess mode); empty means INSTANCE_PATH/metrics.", str),
    Setting("METRICS_ALLOW", "127.0.0.1/32,::1/128", "Client addresses or networks, comma-separated, to which the "
            "web app serves its own /metrics (Prometheus); empty means nobody.", str),
]


def default(key: str) -> Any:
    """A setting's embedded default, for code that needs it outside an app (a benchmark's plain run, say): the
    value is written once, in SETTINGS."""
    for setting in SETTINGS:
        if setting.key == key:
            return setting.default
    raise KeyError(key)


def _parse(kind: type, raw: str) -> Any:
    if kind is bool:
        value = raw.strip().lower()
        if value in {"1", "true", "yes", "on"}:
            return True
        if value in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError(f"expected true/false, got {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"expected a whole number, got {raw!r}") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
    return kind(raw)


def load_config(overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the settings: defaults, overridden by VCOPS_* variables, overridden by `overrides`."""
    env = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for setting in SETTINGS:
        value = setting.default
        raw = env.get(f"VCOPS_{setting.key}")
        if raw is not None:
            try:
                value = _parse(setting.kind, raw)
            except ValueError as exc:
                raise RuntimeError(f"VCOPS_{setting.key}: {exc}") from exc
        config[setting.key] = value
    config.update(overrides or {})

    # Every VCOps process (web workers, the queue worker, the CLI, probes) loads its settings first, so this is
    # where they all make what they write private to the service account: the database and its -wal/-shm, the
    # queue, the keys, the outbox's mails, uploads, metrics and job data. A copy of instance/ must not be
    # readable by anyone else on the machine.
    os.umask(PRIVATE_UMASK)
    instance = Path(config["INSTANCE_PATH"])
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    _make_private(instance)
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = f"sqlite:///{instance / 'vcops.db'}"
    if not config["SECRET_KEY"]:
        config["SECRET_KEY"] = _instance_secret(instance / "secret_key")
    if not config["RATELIMIT_STORAGE_URI"]:
        # Never memory: each gunicorn worker would count on its own, multiplying every limit by the workers.
        limits_file = instance.resolve() / "ratelimits.db"
        config["RATELIMIT_STORAGE_URI"] = config["REDIS_URL"] or f"vcops+sqlite:///{limits_file}"
    _warn_about_keys_beside_data(config)

    secure = str(config["BASE_URL"]).startswith("https://")
    config.setdefault("SESSION_COOKIE_SECURE", secure)
    config.setdefault("REMEMBER_COOKIE_SECURE", secure)
    config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    # Only a remembered session's cookie outlives the browser (app.auth.access ends every session on time).
    config.setdefault("PERMANENT_SESSION_LIFETIME", int(config["SESSION_REMEMBER_DAYS"]) * 86400)
    config.setdefault("BABEL_DEFAULT_LOCALE", config["DEFAULT_LANGUAGE"])
    config.setdefault("BABEL_DEFAULT_TIMEZONE", config["TIMEZONE"])
    config.setdefault("MAX_CONTENT_LENGTH", 32 * 1024 * 1024)
    return config


PRIVATE_UMASK = 0o077
# What VCOps keeps at the top of the instance folder (an earlier version made some of them 0644): made owner-only
# at start. Only these names, never the whole folder: INSTANCE_PATH may point into a folder shared with others.
INSTANCE_ENTRIES = ("vcops.db", "queue.db", "ratelimits.db", "secret_key", "credential_keys", "outbox", "jobs",
                    "documents", "firmware", "metrics", "facts")
log = logging.getLogger(__name__)


def _make_private(instance: Path) -> None:
    """The instance folder and what VCOps keeps in it: no bits for group or others (0700 folders, 0600 files)."""
    paths = [instance]
    for name in INSTANCE_ENTRIES:
        paths += [instance / name, instance / f"{name}-wal", instance / f"{name}-shm"]
    for path in paths:
        try:
            status = path.lstat()
        except OSError:
            continue  # not made yet (or not ours to look into)
        mode = stat.S_IMODE(status.st_mode)
        if mode & 0o077 and not stat.S_ISLNK(status.st_mode):
            try:
                path.chmod(mode & 0o700)
            except OSError:
                log.warning("%s is open to others (mode %o) and not ours to change", path, mode)


LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


def embedded_demo(config: dict[str, Any]) -> bool:
    """The app as `make run` starts it: its database is a SQLite file and it answers on this machine only."""
    host = urlsplit(str(config["BASE_URL"])).hostname or ""
    return str(config["DATABASE_URL"]).startswith("sqlite") and host in LOOPBACK_HOSTS


def _warn_about_keys_beside_data(config: dict[str, Any]) -> None:
    """The generated credential keys file suits the demo only: beside the database, one copy of the instance folder
    (a backup, a stolen disk) opens every device credential; on several machines each would make its own key."""
    if str(config.get("CREDENTIAL_KEYS") or "").strip() or config["REDIS_URL"] or embedded_demo(config):
        return  # keys from the environment; or Redis, where the vault refuses the file itself; or the demo
    log.warning("device credentials are encrypted with keys kept in %s, beside the data: outside the embedded "
                "demo set VCOPS_CREDENTIAL_KEYS from a secrets file or the environment "
                "(`vcops credentials new-key` prints one)", Path(config["INSTANCE_PATH"]) / "credential_keys")


def _instance_secret(path: Path) -> str:
    """A random key kept beside the database, readable by the owner only, so sessions survive restarts."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # another process (web or worker) made it first
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def local_zone() -> ZoneInfo:
    """The zone times are shown and read in (TIMEZONE), for the current app: pages, forms, schedules alike."""
    from flask import current_app

    return ZoneInfo(current_app.config["TIMEZONE"])
