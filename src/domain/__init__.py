"""Conveyor's domain: tasks, their rules, and the ports the outer layers implement."""
