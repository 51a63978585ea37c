"""Many simulated vLLM servers in one process and one event loop, one port each.

``async with SimFleet(SimFleetConfig(backends=4)) as fleet:`` starts ``sim-0`` .. ``sim-3`` on free ports
of 127.0.0.1 (or ``base_port``, ``base_port + 1``, ...); ``fleet.servers[i]`` exposes ``.id``, ``.url``,
``.port`` and ``.engine`` (running/waiting queues, ``.kv`` cache, ``.stats`` counters) for tests and
experiments. Every server gets its own engine, KV cache and Prometheus registry; nothing is shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from loadtests.sim.engine import SimEngine
from loadtests.sim.profiles import DEFAULT_PROFILE, SimProfile, get_profile
from loadtests.sim.server import SimServer


@dataclass(slots=True)
class SimFleetConfig:
    """How many servers, where, and what each simulates. ``None`` knobs keep the profile's value."""

    backends: int = 1
    base_port: int = 0
    """0: each server asks the OS for a free port; otherwise server i listens on ``base_port + i``."""
    host: str = "127.0.0.1"
    profile: str | SimProfile = DEFAULT_PROFILE
    model: str | None = None
    """Served model name of every server (default: the profile's model)."""
    models: tuple[str, ...] = ()
    """If given, server i serves ``models[i % len(models)]`` (a fleet with several models)."""
    time_scale: float = 1.0
    """Multiplies every simulated duration: 0.1 runs ten times faster than the hardware simulated."""
    block_size: int | None = None
    num_gpu_blocks: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    max_model_len: int | None = None
    default_max_tokens: int | None = None
    fail_rate: float = 0.0
    """Fraction of completion requests each server answers with a 500 (fault injection)."""
    seed: int = 0

    def resolved_profile(self) -> SimProfile:
        base = get_profile(self.profile) if isinstance(self.profile, str) else self.profile
        return base.with_overrides(
            block_size=self.block_size,
            num_gpu_blocks=self.num_gpu_blocks,
            max_num_seqs=self.max_num_seqs,
            max_num_batched_tokens=self.max_num_batched_tokens,
            max_model_len=self.max_model_len,
            default_max_tokens=self.default_max_tokens,
        )

    def model_for(self, index: int, profile: SimProfile) -> str:
        if self.models:
            return self.models[index % len(self.models)]
        return self.model or profile.model


class SimFleet:
    """An async context manager owning ``config.backends`` simulated servers."""

    def __init__(self, config: SimFleetConfig) -> None:
        if config.backends < 1:
            raise ValueError("a fleet needs at least one backend")
        if not 0.0 <= config.fail_rate <= 1.0:
            raise ValueError("fail_rate must be within [0, 1]")
        self.config = config
        self.profile = config.resolved_profile()
        self.servers: list[SimServer] = []
        for i in range(config.backends):
            server_id = f"sim-{i}"
            engine = SimEngine(self.profile, time_scale=config.time_scale, name=server_id)
            self.servers.append(
                SimServer(
                    engine,
                    server_id=server_id,
                    host=config.host,
                    port=config.base_port + i if config.base_port else 0,
                    models=[config.model_for(i, self.profile)],
                    fail_rate=config.fail_rate,
                    seed=f"{config.seed}:{server_id}",
                )
            )

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def server(self, server_id: str) -> SimServer:
        for s in self.servers:
            if s.id == server_id:
                return s
        raise KeyError(server_id)

    async def start(self) -> None:
        try:
            for s in self.servers:
                await s.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for s in self.servers:
            await s.close()

    async def __aenter__(self) -> SimFleet:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
