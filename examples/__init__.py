"""Web apps that read statepump's configuration: embedded (Flask, FastAPI) or through the sidecar (gunicorn)."""
