"""tlsgate.cli: the ``tlsgate`` command. It parses, calls the packages, and prints; it holds no logic of its own."""

from tlsgate.cli.main import app, main

__all__ = ["app", "main"]
