"""A worker in a process of its own, for the lost-job test: runs one job, and is killed mid-run."""

from __future__ import annotations

import json
import sys

from app import create_app
from app.auth.audit import Actor, set_actor
from app.provisioning.runner.run import run_job

if __name__ == "__main__":
    config, job_id = json.loads(sys.argv[1]), int(sys.argv[2])
    app = create_app(config)
    with app.app_context():
        set_actor(Actor(None, "worker"))
        run_job(job_id)
