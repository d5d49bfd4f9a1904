"""tlsgate: a self-hosted secure web gateway built around TLS interception and its root CA."""

__all__ = ["__version__"]

__version__ = "0.1.0"
