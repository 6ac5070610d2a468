"""Task types: one module per worker type, found through ``workers_core.tasks`` entry points."""
