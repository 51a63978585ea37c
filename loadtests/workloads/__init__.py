"""Deterministic request streams for ``loadtest run``: ``reference`` (tenants with long system prompts),
``chat`` (multi-turn conversations whose history grows) and ``trace`` (Mooncake-format replay)."""

from loadtests.workloads.base import PRIORITIES, WorkItem, Workload
from loadtests.workloads.chat import ChatParams, ChatWorkload
from loadtests.workloads.reference import ReferenceParams, ReferenceWorkload
from loadtests.workloads.trace import DEFAULT_TRACE, TraceParams, TraceRecord, TraceWorkload, load_trace

WORKLOADS = ("reference", "chat", "trace")

__all__ = [
    "DEFAULT_TRACE",
    "PRIORITIES",
    "WORKLOADS",
    "ChatParams",
    "ChatWorkload",
    "ReferenceParams",
    "ReferenceWorkload",
    "TraceParams",
    "TraceRecord",
    "TraceWorkload",
    "WorkItem",
    "Workload",
    "load_trace",
]
