"""``python -m tlsgate`` runs the ``tlsgate`` command."""

from tlsgate.cli import main

main()
