"""Shared fleet state behind one interface: ``InMemoryStore`` (default) and, with Redis,
``FailoverStore`` over ``coordination.redis_store.RedisStore`` (which raises) and a local ``InMemoryStore``."""

from coordination.base import (
    BackendLoad,
    CoordinationError,
    CoordinationStore,
    Observation,
    Reservation,
)
from coordination.failover import FailoverStore
from coordination.memory import InMemoryStore
from coordination.scoring import OverCapacity, Pick, PickRequest, ScoreLine, evaluate

__all__ = [
    "BackendLoad",
    "CoordinationError",
    "CoordinationStore",
    "FailoverStore",
    "InMemoryStore",
    "Observation",
    "OverCapacity",
    "Pick",
    "PickRequest",
    "Reservation",
    "ScoreLine",
    "evaluate",
]
