"""Entry points: the HTTP API, the worker process, the CLI, and the composition root."""
