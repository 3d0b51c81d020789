"""The worker's child processes, for handlers of task types with executor="process"."""
