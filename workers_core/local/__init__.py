"""The local stack `workers-core up` starts: a Redis with AOF, a Ray head, the Serve app."""
