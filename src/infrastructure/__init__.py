"""Adapters to the outside world: Redis, pottery's Redlock, settings, logging, task types."""
