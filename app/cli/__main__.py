"""`python -m app.cli`: the `vcops` command without its console script (how `vcops serve` starts its worker)."""

from app.cli import main

main()
