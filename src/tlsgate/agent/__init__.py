"""tlsgate.agent: keeps an endpoint's trust stores holding the interception CA. It never holds a CA private key."""

from tlsgate.agent.acceptance import Acceptance, accept_ca_set
from tlsgate.agent.core import Agent, EndpointStatus, StoreChange, StoreStatus, describe_cert

__all__ = ["Acceptance", "Agent", "EndpointStatus", "StoreChange", "StoreStatus", "accept_ca_set", "describe_cert"]
