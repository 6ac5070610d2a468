"""The operations page (``/ops``) and the pool actions it drives (drain, resume, scale)."""
