"""Built-in task types: file tasks, send_email, and the demo module."""
