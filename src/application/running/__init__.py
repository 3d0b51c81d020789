"""Running a claimed task: its lease, its handler, its outcome; the worker's path."""
