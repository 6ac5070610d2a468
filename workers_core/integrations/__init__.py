"""Outside services, one module or package each; their errors are translated here."""
