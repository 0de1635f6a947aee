"""Configuration backups of endpoints and bridges: versions as fetched by backup jobs, and their diffs."""
