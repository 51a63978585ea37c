"""Named hardware/model profiles: every knob of a simulated vLLM server, with where each figure comes from.

Step-time model (one engine step = one forward pass over the scheduled batch)::

    step = fixed + per_seq * seqs + max(compute, memory)
    compute = s_per_token * tokens + s_per_pair * attention_pairs
    memory  = (weight_bytes + kv_bytes_per_token * context_tokens) / bandwidth

``tokens`` counts every token computed in the step (prefill chunks plus one per decoding sequence);
``attention_pairs`` is, over the scheduled requests, new tokens x (tokens already in context + half the new
ones), the quadratic term of attention; ``context_tokens`` is the KV read by the step (each scheduled
sequence's context after the step). Prefill is compute-bound and decode memory-bound, which the ``max`` of
the two terms captures (a roofline). ``fixed`` and ``per_seq`` stand for the engine's CPU-side work
(scheduling, input preparation, sampling, detokenisation); they are assumptions, not measurements.

Calibration (``loadtests/data/gpu/h200-qwen2.5-shapes-hf-sdpa.json``, one H200, HF eager + SDPA): the
small passes there are launch-overhead bound (~19 ms whatever the size), so only the large prefills are
used. Fitting ``t(n) = a*n + b*n^2/2`` to the 8,192- and 16,384-token prefills gives, for Qwen2.5-1.5B,
``a = 6.757 us/token`` and ``b = 2.40e-10 s/pair`` (63.4 ms and 142.9 ms; the fit predicts 29.7 ms at 4,096
tokens, measured 31.3 ms) and for Qwen2.5-7B ``a = 24.40 us/token``, ``b = 6.94e-10 s/pair`` (223.2 ms and
493.0 ms; predicts 105.8 ms at 4,096, measured 107.4 ms). Other GPUs scale both by the ratio of dense
16-bit tensor peaks (H200 989 TFLOPS; L4 121 TFLOPS bf16; T4 65 TFLOPS fp16: public spec sheets), i.e. the
same model-FLOPs utilisation as measured on the H200. Memory bandwidth is the spec sheet figure (H200
4.8 TB/s, L4 300 GB/s, T4 320 GB/s) times 0.896, the measured/spec ratio on the H200 (4.3 / 4.8 TB/s).

KV cache size follows vLLM: ``gpu_memory_utilization`` (0.9, vLLM's default) x device memory, minus the
weights, minus an assumed reserve for the activation peak, CUDA graphs and non-torch allocations (1.5 GiB
on L4/T4, 3 GiB on H200 with its larger default batch), divided by the bytes of one block.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

GIB = 1 << 30
MIB = 1 << 20

# Public spec sheets (dense 16-bit tensor TFLOPS; memory as nvidia-smi reports it; bandwidth bytes/s).
H200_TFLOPS, H200_MEM, H200_BW = 989.0, 143_771 * MIB, 4.8e12
L4_TFLOPS, L4_MEM, L4_BW = 121.0, 23_034 * MIB, 300e9
T4_TFLOPS, T4_MEM, T4_BW = 65.0, 15_360 * MIB, 320e9
BW_EFFICIENCY = 4.3 / 4.8  # measured device-to-device / spec, H200 (gpu/README.md)

# Fits to the H200 large prefills (module docstring): seconds per token, seconds per attention pair.
QWEN15_H200_S_PER_TOKEN, QWEN15_H200_S_PER_PAIR = 6.757e-6, 2.40e-10
QWEN7_H200_S_PER_TOKEN, QWEN7_H200_S_PER_PAIR = 24.40e-6, 6.94e-10

GPU_FIXED_S = 1.5e-3  # assumed CPU-side cost of one vLLM V1 step with CUDA graphs
GPU_PER_SEQ_S = 15e-6  # assumed per-sequence scheduling/sampling/detokenisation cost per step

QWEN15_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"
QWEN7_MODEL = "Qwen/Qwen2.5-7B-Instruct"


def kv_bytes_per_token(layers: int, kv_heads: int, head_dim: int, dtype_bytes: int = 2) -> int:
    """K and V, every layer: Qwen2.5-1.5B 2*28*2*128*2 = 28,672 B; Qwen2.5-7B 2*28*4*128*2 = 57,344 B."""
    return 2 * layers * kv_heads * head_dim * dtype_bytes


QWEN15_KV = kv_bytes_per_token(28, 2, 128)  # config.json: 28 layers, 2 KV heads, head_dim 1536/12
QWEN7_KV = kv_bytes_per_token(28, 4, 128)  # config.json: 28 layers, 4 KV heads, head_dim 3584/28
QWEN15_WEIGHTS = 1.54e9 * 2  # model card: 1.54B parameters (tied embeddings), bf16
QWEN7_WEIGHTS = 7.61e9 * 2  # model card: 7.61B parameters, bf16


def gpu_blocks(mem_bytes: float, weight_bytes: float, kv_per_token: int, block_size: int, reserve_bytes: float) -> int:
    """vLLM's sizing: 0.9 x memory - weights - reserve, in whole blocks."""
    return int((0.9 * mem_bytes - weight_bytes - reserve_bytes) // (kv_per_token * block_size))


@dataclass(frozen=True, slots=True)
class SimProfile:
    """Everything that makes one simulated server behave like a given model on a given accelerator."""

    name: str
    model: str
    """Default served model name."""
    description: str
    num_gpu_blocks: int
    block_size: int = 16
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 2048
    max_model_len: int = 32768
    default_max_tokens: int = 16
    """Output length when a request gives neither max_tokens nor max_completion_tokens."""
    gpu_memory_utilization: float = 0.9
    step_fixed_s: float = GPU_FIXED_S
    step_per_seq_s: float = GPU_PER_SEQ_S
    s_per_token: float = QWEN15_H200_S_PER_TOKEN
    s_per_pair: float = QWEN15_H200_S_PER_PAIR
    weight_bytes: float = QWEN15_WEIGHTS
    kv_bytes_per_token: int = QWEN15_KV
    mem_bandwidth: float = H200_BW * BW_EFFICIENCY

    def __post_init__(self) -> None:
        for field in ("num_gpu_blocks", "block_size", "max_num_seqs", "max_num_batched_tokens"):
            if getattr(self, field) < 1:
                raise ValueError(f"profile {self.name}: {field} must be >= 1")
        if self.max_model_len < 2:
            raise ValueError(f"profile {self.name}: max_model_len must be >= 2")

    @property
    def kv_capacity_tokens(self) -> int:
        return self.num_gpu_blocks * self.block_size

    def step_seconds(self, tokens: int, attention_pairs: float, seqs: int, context_tokens: int) -> float:
        """Duration of one engine step (the formula in the module docstring), in simulated seconds."""
        compute = self.s_per_token * tokens + self.s_per_pair * attention_pairs
        memory = (self.weight_bytes + self.kv_bytes_per_token * context_tokens) / self.mem_bandwidth
        return self.step_fixed_s + self.step_per_seq_s * seqs + max(compute, memory)

    def with_overrides(self, **changes: int | None) -> SimProfile:
        """A copy with some knobs changed (``None`` values are ignored).

        Changing ``block_size`` alone keeps the cache's size in tokens (vLLM sizes it in bytes). vLLM
        refuses to start when the cache cannot hold one ``max_model_len`` sequence; the simulator lowers
        ``max_model_len`` to the cache's capacity instead, so a tiny cache is a single flag.
        """
        given = {k: v for k, v in changes.items() if v is not None}
        if "block_size" in given and "num_gpu_blocks" not in given:
            given["num_gpu_blocks"] = max(1, self.kv_capacity_tokens // given["block_size"])
        new = dataclasses.replace(self, **given)  # type: ignore[arg-type]
        capacity = new.num_gpu_blocks * new.block_size
        if new.max_model_len > capacity:
            new = dataclasses.replace(new, max_model_len=max(2, capacity))
        return new


def _gpu_profile(
    name: str, model: str, gpu: str, tflops: float, mem: float, bw: float, big: bool, qwen7: bool = False
) -> SimProfile:
    ratio = H200_TFLOPS / tflops
    per_token, per_pair = (
        (QWEN7_H200_S_PER_TOKEN, QWEN7_H200_S_PER_PAIR) if qwen7 else (QWEN15_H200_S_PER_TOKEN, QWEN15_H200_S_PER_PAIR)
    )
    weights, kv = (QWEN7_WEIGHTS, QWEN7_KV) if qwen7 else (QWEN15_WEIGHTS, QWEN15_KV)
    reserve = 3 * GIB if big else 1.5 * GIB
    return SimProfile(
        name=name,
        model=model,
        description=f"{model} on one {gpu}, vLLM defaults (16-bit weights and KV, gpu_memory_utilization 0.9)",
        num_gpu_blocks=gpu_blocks(mem, weights, kv, 16, reserve),
        # vLLM's OpenAI-server defaults: >= 70 GiB GPUs 1024 seqs / 8192 tokens, others 256 / 2048.
        max_num_seqs=1024 if big else 256,
        max_num_batched_tokens=8192 if big else 2048,
        max_model_len=32768,  # Qwen2.5 config.json max_position_embeddings
        s_per_token=per_token * ratio,
        s_per_pair=per_pair * ratio,
        weight_bytes=weights,
        kv_bytes_per_token=kv,
        mem_bandwidth=bw * BW_EFFICIENCY,
    )


PROFILES: dict[str, SimProfile] = {
    p.name: p
    for p in (
        # The reference design's setup: Qwen2.5-1.5B-Instruct on one NVIDIA L4. ~37k blocks (594k tokens).
        _gpu_profile("qwen2.5-1.5b-l4", QWEN15_MODEL, "NVIDIA L4", L4_TFLOPS, L4_MEM, L4_BW, big=False),
        _gpu_profile("qwen2.5-1.5b-t4", QWEN15_MODEL, "NVIDIA T4 (fp16)", T4_TFLOPS, T4_MEM, T4_BW, big=False),
        _gpu_profile("qwen2.5-1.5b-h200", QWEN15_MODEL, "NVIDIA H200", H200_TFLOPS, H200_MEM, H200_BW, big=True),
        _gpu_profile(
            "qwen2.5-7b-h200", QWEN7_MODEL, "NVIDIA H200", H200_TFLOPS, H200_MEM, H200_BW, big=True, qwen7=True
        ),
        # The real CPU vLLM of REAL_VLLM.md: a 0.8M-parameter model, --block-size 32, 4 MiB of KV at
        # 512 B/token = 256 blocks, --max-num-seqs 64, --max-model-len 2048. Timing fitted to what was seen
        # there: one stream 300-450 tokens/s (2.4 ms + 0.12 ms per sequence -> ~400/s), 32 streams ~6k/s
        # (6.2 ms per step -> ~5k/s), TTFT 8-20 ms for ~740-token prompts (12 us/token -> ~11 ms).
        SimProfile(
            name="tiny-cpu",
            model="tiny",
            description="tiny random Llama on the CPU build of vLLM 0.32 (REAL_VLLM.md)",
            num_gpu_blocks=256,
            block_size=32,
            max_num_seqs=64,
            max_num_batched_tokens=2048,
            max_model_len=2048,
            gpu_memory_utilization=0.92,
            step_fixed_s=2.4e-3,
            step_per_seq_s=0.12e-3,
            s_per_token=12e-6,
            s_per_pair=5e-9,
            weight_bytes=1.8e6,
            kv_bytes_per_token=512,
            mem_bandwidth=20e9,
        ),
    )
}

DEFAULT_PROFILE = "qwen2.5-1.5b-l4"


def get_profile(name: str) -> SimProfile:
    """The profile called ``name``; ValueError naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(sorted(PROFILES))}") from None
