"""A digital twin of a vLLM server for load tests: OpenAI API, /metrics, continuous batching, paged KV cache
with automatic prefix caching, preemption and aborts; many servers in one process (``SimFleet``).

Modules, one job each: ``tokenizer`` (prefix-stable token ids, chat template), ``kv_cache`` (block pool and
prefix hashes), ``request`` (per-request state), ``engine`` (scheduler and step loop), ``profiles``
(hardware/model knobs with their sources), ``stats`` (counters and histograms), ``metrics`` (Prometheus
exposition), ``api_requests`` / ``api_responses`` (OpenAI request parsing, response shapes), ``server``
(aiohttp app per server), ``fleet`` (many servers), ``cli`` (``loadtest sim``).
"""

from loadtests.sim.engine import SimEngine
from loadtests.sim.fleet import SimFleet, SimFleetConfig
from loadtests.sim.kv_cache import KVCache, hash_blocks, max_cache_hit_blocks
from loadtests.sim.profiles import DEFAULT_PROFILE, PROFILES, SimProfile, get_profile
from loadtests.sim.request import RequestState, SimRequest
from loadtests.sim.server import BACKEND_HEADER, SimServer
from loadtests.sim.tokenizer import count_tokens, render_chat, tokenize, tokenize_chat

__all__ = [
    "BACKEND_HEADER",
    "DEFAULT_PROFILE",
    "PROFILES",
    "KVCache",
    "RequestState",
    "SimEngine",
    "SimFleet",
    "SimFleetConfig",
    "SimProfile",
    "SimRequest",
    "SimServer",
    "count_tokens",
    "get_profile",
    "hash_blocks",
    "max_cache_hit_blocks",
    "render_chat",
    "tokenize",
    "tokenize_chat",
]
