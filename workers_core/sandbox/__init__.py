"""Local stand-ins for outside services (Slack, ANAF, REGES) that speak their documented
protocol over real HTTP: the production clients are pointed at them by base URL."""
