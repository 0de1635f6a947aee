#!/usr/bin/env python3
"""VCOps' dynamic inventory: the managed equipment, read from the app's database through the app's own models
(the configured VCOPS_* settings say which database), grouped and described by app.provisioning.inventory.

    ansible-inventory -i inventory/ --list
    inventory/vcops.py --list | --host NAME

Started by a Python without VCOps (Ansible runs the script by its #! line), it starts again with the project's
virtual environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _reexec_in_venv() -> None:
    venv_python = ROOT / ".venv" / "bin" / "python"
    if venv_python.exists() and Path(sys.executable).resolve() != venv_python.resolve():
        os.execv(str(venv_python), [str(venv_python), __file__, *sys.argv[1:]])  # noqa: S606 - our own venv


try:
    from app import create_app
except ImportError:
    _reexec_in_venv()
    sys.path.insert(0, str(ROOT))
    from app import create_app


def inventory_document() -> dict:
    import logging

    from app.db import db
    from app.provisioning.inventory import build_inventory

    logging.disable(logging.WARNING)  # stdout is the inventory: nothing else may reach it
    app = create_app()
    with app.app_context():
        try:
            return build_inventory(db.session()).as_ansible()
        finally:
            db.session.remove()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="VCOps' equipment as an Ansible inventory")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--list", action="store_true")
    which.add_argument("--host")
    args = parser.parse_args(argv)
    document = inventory_document()
    if args.host:
        document = document["_meta"]["hostvars"].get(args.host, {})
    json.dump(document, sys.stdout, ensure_ascii=False, indent=1, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
