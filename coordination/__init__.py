"""Shared fleet state behind one interface: ``InMemoryStore`` (default) and, with Redis, ``RedisStore``."""

from coordination.base import (
    BackendLoad,
    CoordinationError,
    CoordinationStore,
    Observation,
    Reservation,
)
from coordination.memory import InMemoryStore
from coordination.scoring import OverCapacity, Pick, PickRequest, ScoreLine, evaluate

__all__ = [
    "BackendLoad",
    "CoordinationError",
    "CoordinationStore",
    "InMemoryStore",
    "Observation",
    "OverCapacity",
    "Pick",
    "PickRequest",
    "Reservation",
    "ScoreLine",
    "evaluate",
]
