"""Who may call the gateway: bearer tokens, scopes, the route policy, the audit log and
per-client submission limits. Wired into the app by ``deployments/auth.py``."""
