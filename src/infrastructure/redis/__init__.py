"""The Redis queue adapter, its keys and its Lua scripts."""
