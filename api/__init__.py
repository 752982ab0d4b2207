"""The HTTP API under /v1: roles, commands, queries and their error answers."""
