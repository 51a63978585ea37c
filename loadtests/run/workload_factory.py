"""The run's workload, built from its options (``--workload`` and the workload's own arguments)."""

from __future__ import annotations

from loadtests.run.options import RunOptions
from loadtests.sim.profiles import get_profile
from loadtests.workloads import (
    ChatParams,
    ChatWorkload,
    ReferenceParams,
    ReferenceWorkload,
    TraceParams,
    TraceWorkload,
    Workload,
)


def build_workload(opts: RunOptions) -> Workload:
    a = opts.workload_args
    if opts.workload == "reference":
        return ReferenceWorkload(
            ReferenceParams(
                tenants=a["tenants"],
                system_tokens=a["system_tokens"] or 3000,
                user_tokens=a["user_tokens"] or 50,
                output_tokens=a["output_tokens"],
                zipf=a["zipf"],
                priority_mix=a["priority_mix"],
                seed=opts.seed,
            )
        )
    if opts.workload == "chat":
        return ChatWorkload(
            ChatParams(
                sessions=a["sessions"],
                turns=a["turns"],
                system_prompts=a["system_prompts"],
                system_tokens=a["system_tokens"] or 1000,
                user_tokens=a["user_tokens"] or 150,
                output_tokens=a["output_tokens"],
                priority_mix=a["priority_mix"],
                seed=opts.seed,
            )
        )
    return TraceWorkload(
        TraceParams(
            path=opts.trace,
            system_blocks=a["trace_system_blocks"],
            max_model_len=get_profile(opts.profile).max_model_len,
            time_scale=a["trace_time_scale"],
            seed=opts.seed,
        )
    )
