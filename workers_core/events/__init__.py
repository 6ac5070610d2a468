"""Lifecycle events for outside listeners: the SSE reader and webhook subscriptions."""
