"""Simulators of the equipment VCOps manages, for tests and benchmarks (not part of the app package)."""
