"""Use cases and the task registry: what Conveyor does, in terms of the domain's ports."""
