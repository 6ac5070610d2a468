"""Metrics (``ray.util.metrics``) and W3C trace context for jobs."""
