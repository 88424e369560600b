"""The ACD: the agent state machine, projects (queues) and the routing engine — pure, no I/O.

See docs/acd.md. The engine takes inputs with ``now`` and returns actions; an adapter performs
them (rings phones, writes history, publishes events) and arms the one timer it asks for.
"""

from .agents import TABLE, AgentInput, AgentState, Effect, IllegalTransition, render_table, transition
from .engine import Engine
from .events import (
    Action,
    AgentPending,
    AgentStateChanged,
    AgentView,
    AutoLogout,
    CancelOffer,
    ContactStateChanged,
    ContactView,
    Offer,
    Overflowed,
    ProjectStats,
    WaitingNotice,
)
from .model import (
    AcdError,
    AgentProfile,
    Channel,
    Contact,
    ContactState,
    EngineError,
    InvalidConfig,
    MissKind,
    NotFound,
    Project,
    SkillRequirement,
    Strategy,
)

__all__ = [
    "TABLE", "AcdError", "Action", "AgentInput", "AgentPending", "AgentProfile", "AgentState",
    "AgentStateChanged", "AgentView", "AutoLogout", "CancelOffer", "Channel", "Contact", "ContactState",
    "ContactStateChanged", "ContactView", "Effect", "Engine", "EngineError", "IllegalTransition",
    "InvalidConfig", "MissKind", "NotFound", "Offer", "Overflowed", "Project", "ProjectStats",
    "SkillRequirement", "Strategy", "WaitingNotice", "render_table", "transition",
]
