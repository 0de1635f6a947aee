"""Which hosts a run works on: each play's host pattern (following import_playbook) within the limit, over
the run's inventory, as Ansible itself resolves them (the runner and the meeting-window guard ask the same)."""

from __future__ import annotations

from pathlib import Path


def _play_patterns(playbook: Path, seen: set[Path] | None = None) -> list[str]:
    """The host patterns of the playbook's plays (following import_playbook); "all" where one is templated."""
    from ansible.parsing.dataloader import DataLoader

    seen = seen or set()
    if playbook in seen:
        return []
    seen.add(playbook)
    plays = DataLoader().load_from_file(str(playbook)) or []
    patterns: list[str] = []
    for play in plays if isinstance(plays, list) else []:
        if not isinstance(play, dict):
            continue
        if "import_playbook" in play:
            target = str(play["import_playbook"])
            patterns += (["all"] if "{{" in target
                         else _play_patterns((playbook.parent / target).resolve(), seen))
        elif "hosts" in play:
            hosts = play["hosts"]
            pattern = ",".join(map(str, hosts)) if isinstance(hosts, list) else str(hosts)
            patterns.append("all" if "{{" in pattern else pattern)
    return patterns


def target_hosts(playbook: Path, inventory_file: Path, limit: str) -> list[str]:
    """The hosts the run will work on: each play's pattern within the limit, as Ansible itself resolves them."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    manager = InventoryManager(loader=DataLoader(), sources=[str(inventory_file)])
    if limit:
        manager.subset(limit)
    found: set[str] = set()
    for pattern in _play_patterns(playbook):
        found.update(h.name for h in manager.get_hosts(pattern))
    return sorted(found)
