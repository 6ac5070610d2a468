"""The worker registry: which replicas serve which queue, their heartbeats and health.

``core`` holds the rules (pure, clock-driven), ``mirror`` the Redis copy, ``service`` the
two together, ``actor`` the Ray shell; ``replica`` is what each pool replica runs
(``health``: deep checks with a breaker; ``heartbeat``: the loop with backoff).
"""
