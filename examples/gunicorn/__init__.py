"""gunicorn workers reading the configuration from a ``statepump run`` sidecar."""
