"""The gateway's configuration: one msgspec Struct tree, the single place where every key is defined.

Each key is defined here once, with its constraints on the field (``msgspec.Meta``), so decoding names a
bad key by its path (``$.server.prot``). ``validate`` checks what no single field can state (unique backend
ids, a fleet source, backend URLs). Reading the file and the environment is ``gateway.config_env``'s job,
and ``gateway.config_loader.load`` runs the phases. This module imports nothing of the gateway, so every
other module may import it.

Every failure is a ``ConfigError`` whose message names the key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


HeaderName = Annotated[str, msgspec.Meta(pattern="^[a-z0-9-]+$")]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]
"""A share in (0, 1]."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class RequestLimits(_Section):
    """``server.limits``: caps on a request's shape; a body above one is refused with 400 naming the field."""

    max_tokens: PositiveInt = 131072
    """Largest ``max_tokens`` / ``max_completion_tokens`` a request may ask for."""
    max_n: PositiveInt = 16
    """Largest ``n`` (choices per request)."""
    max_messages: PositiveInt = 4096
    """Most ``messages`` in one chat request."""
    max_depth: Annotated[int, msgspec.Meta(gt=0, le=512)] = 64
    """Deepest JSON nesting of a body (its own object is level 1), checked before decoding; at most 512, well
    below where the decoder would hit the interpreter's recursion limit."""


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: Port = 8080
    workers: PositiveInt = 1
    """granian worker processes; with more than one, use Redis coordination so they share state."""
    max_body_bytes: PositiveInt = 4 * 1024 * 1024
    """Request bodies above this are refused with 413."""
    access_log: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    limits: RequestLimits = msgspec.field(default_factory=RequestLimits)


class TimeoutConfig(_Section):
    connect_s: PositiveFloat = 3.0
    """TCP connect to a backend."""
    first_byte_s: PositiveFloat = 300.0
    """Request sent -> first body byte (for a non-streamed answer, the whole generation)."""
    between_chunks_s: PositiveFloat = 60.0
    """Longest silence between two chunks of a streamed answer."""


class ProxyConfig(_Section):
    timeouts: TimeoutConfig = msgspec.field(default_factory=TimeoutConfig)
    retries: NonNegativeInt = 1
    """Extra attempts on another backend after a connect error or a 5xx before the first byte."""
    max_connections: NonNegativeInt = 0
    """Upstream connection pool size per replica (0 = unlimited)."""
    forward_headers: frozenset[HeaderName] = frozenset()
    """Client request headers passed to backends besides content-type, accept, authorization and the trace
    context (lower-case names; hop-by-hop ones never pass)."""
    return_headers: frozenset[HeaderName] = frozenset()
    """Backend response headers passed to clients besides content-type (lower-case names)."""


class BackendConfig(_Section):
    id: str
    url: str
    models: list[str] = msgspec.field(default_factory=list)
    """Models served; empty means learn them from the backend's /v1/models."""
    weight: PositiveFloat = 1.0


class DnsDiscoveryConfig(_Section):
    name: str
    """A DNS name whose A/AAAA records are the backends (a Kubernetes headless Service)."""
    port: Port = 8000
    scheme: Literal["http", "https"] = "http"
    models: list[str] = msgspec.field(default_factory=list)
    refresh_s: PositiveFloat = 10.0


class HealthConfig(_Section):
    interval_s: PositiveFloat = 1.0
    """How often each backend's /metrics is scraped."""
    timeout_s: PositiveFloat = 1.0
    unhealthy_threshold: PositiveInt = 2
    """Consecutive failed scrapes that mark a backend unhealthy."""
    healthy_threshold: PositiveInt = 1
    """Consecutive good scrapes that bring it back."""
    consecutive_errors: PositiveInt = 3
    """Passive ejection (Envoy's outlier detection): proxied connect errors/5xx in a row that eject."""
    base_ejection_s: PositiveFloat = 5.0
    """Ejection time is base_ejection_s x the number of times the backend was ejected (capped at 10x)."""
    max_ejection_percent: Annotated[float, msgspec.Meta(ge=0, le=100)] = 50.0
    """Never eject more than this share of the fleet passively."""


class FleetConfig(_Section):
    backends: list[BackendConfig] = msgspec.field(default_factory=list)
    dns: DnsDiscoveryConfig | None = None
    health: HealthConfig = msgspec.field(default_factory=HealthConfig)


class ScorerConfig(_Section):
    type: str
    """A registered scorer (docs/routing.md): prefix_cache, load, kv_usage, session, least_queue, system_prompt."""
    weight: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    """How much this scorer's [0, 1] rating counts in the weighted sum."""
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    """The scorer's own parameters; each scorer module defines its keys."""


class PresetConfig(_Section):
    scorers: list[ScorerConfig] = msgspec.field(default_factory=list)
    picker: Literal["max_score", "round_robin"] = "max_score"
    """max_score: the highest weighted score at the pick wins (seeded random ties); round_robin: in turn."""


class RoutingConfig(_Section):
    policy: str = "prefix"
    """A preset: built in (prefix, round_robin, least_queue, cache_aware) or defined under routing.presets."""
    presets: dict[str, PresetConfig] = msgspec.field(default_factory=dict)
    """Presets of the operator's own, by name; one named like a built-in replaces it."""
    prefix_block_chars: Annotated[int, msgspec.Meta(gt=0)] = 256
    """Prefix hashing: characters per block (about 64 tokens)."""
    prefix_max_blocks: Annotated[int, msgspec.Meta(gt=0)] = 512
    """Prefix hashing: blocks hashed at most (longer prompts match on their first 128K characters)."""
    session_header: str | None = "x-session-id"
    """A request header naming a session; the session scorer keeps a session on one backend. None: off."""


class PriorityWaits(_Section):
    high: NonNegativeFloat = 10.0
    normal: NonNegativeFloat = 5.0
    low: NonNegativeFloat = 1.0


class AdmissionConfig(_Section):
    enabled: bool = True
    default_priority: Literal["high", "normal", "low"] = "normal"
    """Priority of requests without an ``x-priority`` header."""
    backend_capacity: PositiveFloat = 64.0
    """Concurrent requests (running + waiting, or the fleet's in-flight) at which a backend counts as full."""
    low_threshold: Fraction = 0.7
    """Fleet pressure (mean load / capacity over the model's backends) above which ``low`` waits or is shed."""
    normal_threshold: Fraction = 0.9
    """The same for ``normal``; ``high`` waits only when every backend is full."""
    kv_saturation: Fraction = 0.98
    """A backend whose KV cache is this full, with requests waiting, counts as full."""
    stale_after_s: PositiveFloat = 3.0
    """A backend whose last good scrape is older than this counts as full (the gateway cannot see it)."""
    max_queue: NonNegativeInt = 256
    """Requests of one priority that may wait in one replica's queue; more are shed at once."""
    max_wait_s: PriorityWaits = msgspec.field(default_factory=PriorityWaits)
    """How long each priority may wait for capacity before it is shed."""
    recheck_s: PositiveFloat = 0.1
    """Waiting requests re-check the fleet at least this often (and whenever a request ends)."""
    retry_after_s: NonNegativeInt = 1
    """The Retry-After header of a 429."""


class CoordinationConfig(_Section):
    redis_url: str | None = None
    """None keeps state in process (one replica). ``redis://`` or ``rediss://`` (TLS; a private CA and client
    certificates as URL parameters: ``?ssl_ca_certs=/ca.crt&ssl_certfile=...&ssl_keyfile=...``), with
    ``user:password@`` for ACLs; with ``sentinels`` set, only its credentials and db are used."""
    password: str | None = None
    """Overrides the URL's password (e.g. from a Kubernetes Secret via GATEWAY_COORDINATION__PASSWORD)."""
    sentinels: list[str] = msgspec.field(default_factory=list)
    """``host:port`` of Redis Sentinels; the master is looked up by ``sentinel_service``. (A TLS master behind
    Sentinel with a private CA cannot be configured yet: the URL's ``ssl_*`` parameters are not passed on.)"""
    sentinel_service: str = "mymaster"
    sentinel_password: str | None = None
    """The Sentinels' own password (``requirepass`` on the Sentinels), if they have one."""
    cluster: bool = False
    """Connect to a Redis Cluster (every key of a fleet shares one hash tag, so scripts stay on one slot)."""
    namespace: str = "default"
    """Every key of one fleet shares this name (and a hash tag built from it)."""
    lease_ttl_s: PositiveFloat = 10.0
    """A replica that stops heartbeating loses its reservations after this long."""
    call_timeout_s: PositiveFloat = 0.25
    """Every Redis call; past it the replica serves from its own view (degraded) and retries with backoff."""
    backoff_max_s: PositiveFloat = 5.0
    ewma_alpha: Fraction = 0.2
    """Weight of the newest TTFT/per-token latency observation in the moving averages."""
    prefix_ttl_s: PositiveFloat = 600.0
    """Prefix index entries older than this do not count (vLLM has likely evicted them)."""


class GatewayConfig(_Section):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    proxy: ProxyConfig = msgspec.field(default_factory=ProxyConfig)
    fleet: FleetConfig = msgspec.field(default_factory=FleetConfig)
    routing: RoutingConfig = msgspec.field(default_factory=RoutingConfig)
    coordination: CoordinationConfig = msgspec.field(default_factory=CoordinationConfig)
    admission: AdmissionConfig = msgspec.field(default_factory=AdmissionConfig)


def validate(config: GatewayConfig) -> GatewayConfig:
    """Cross-references no single field can state (field constraints are checked by ``decode``)."""
    fleet = config.fleet
    if not fleet.backends and fleet.dns is None:
        raise ConfigError("fleet: configure fleet.backends or fleet.dns")
    seen: set[str] = set()
    for i, backend in enumerate(fleet.backends):
        if backend.id in seen:
            raise ConfigError(f"fleet.backends[{i}].id: duplicate backend id {backend.id!r}")
        seen.add(backend.id)
        parts = urlsplit(backend.url)
        if parts.scheme not in ("http", "https"):
            raise ConfigError(f"fleet.backends[{i}].url: must start with http:// or https://")
        if not parts.hostname:
            raise ConfigError(f"fleet.backends[{i}].url: names no host")
        try:
            port = parts.port  # ValueError when not a number or out of 0..65535
        except ValueError:
            port = 0
        if port == 0 or parts.netloc.endswith(":"):
            raise ConfigError(f"fleet.backends[{i}].url: the port must be a number in 1..65535")
    url = config.coordination.redis_url
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("coordination.redis_url: must start with redis://, rediss:// or unix://")
    if not config.coordination.namespace:
        raise ConfigError("coordination.namespace: must not be empty")
    admission = config.admission
    if not 0 < admission.low_threshold <= admission.normal_threshold:
        raise ConfigError("admission.low_threshold: must be > 0 and <= admission.normal_threshold")
    return config
