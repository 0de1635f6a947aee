"""VCOps: meetings, equipment and links of a province's video-conference network."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from app.config import PROJECT_ROOT, load_config


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings, extensions, blueprints, the access check and the commit point."""
    settings = load_config(config)
    app = Flask(
        __name__,
        instance_path=str(settings["INSTANCE_PATH"]),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder="static",
    )
    app.config.update(settings)
    logging.basicConfig(level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from app import web
    from app.auth import audit
    from app.db import db
    from app.monitoring import webmetrics
    from app.queue import outbox
    from app.tasks import configure_queue

    if app.config["PROXY_COUNT"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    db.init_app(app)
    audit.install(db.sessionmaker)
    outbox.install(db.sessionmaker)
    web.init_app(app)
    webmetrics.init_app(app)
    configure_queue(app)
    return app
