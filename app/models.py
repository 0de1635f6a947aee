"""Imports every domain's models, so that the metadata (Alembic, tests) knows all tables."""


def load_all() -> None:
    import app.auth.models
    import app.calendar.models
    import app.devices.models
    import app.meetings.agenda_models
    import app.meetings.models
    import app.monitoring.models
    import app.provisioning.backup_models
    import app.provisioning.firmware_models
    import app.provisioning.models
    import app.provisioning.schedule_models
    import app.queue.models
    import app.sites.models  # noqa: F401
