"""tlsgate.policy: pure decisions — inspect, bypass (splice) or block — from facts about a connection.

No sockets, no database: the proxy asks, the policy answers.
"""

from tlsgate.policy.rules import Action, Decision, HostPattern, Policy

__all__ = ["Action", "Decision", "HostPattern", "Policy"]
