"""Runtime-side client of the moeplan expert-cache daemon (``moeplan serve``).

Before each MoE layer a runtime calls :meth:`Session.step` with the experts its gate selected;
the reply says which slot holds each, which experts to load now (evicting what), and what to
prefetch for the next layers. See the project README, section "Cache daemon".
"""

from .client import (
    PROTOCOL_VERSION,
    Client,
    DaemonError,
    ExpertRef,
    Placement,
    Session,
    StepResult,
    Transfer,
    default_socket_path,
)

__all__ = [
    "PROTOCOL_VERSION",
    "Client",
    "DaemonError",
    "ExpertRef",
    "Placement",
    "Session",
    "StepResult",
    "Transfer",
    "default_socket_path",
]
