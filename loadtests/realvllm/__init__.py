"""Real vLLM (the CPU build serving a tiny generated model) next to the simulator.

``servers``: start and stop ``vllm serve`` processes as the ``realvllm`` tests and experiments need them
(install with ``scripts/install_real_vllm.py``, model with ``scripts/make_tiny_model.py``).
``workload``: deterministic prompts whose prefix-cache behaviour is known in advance, and the counters read
back from ``/metrics``, shared by the tests and ``loadtests/experiments/realvllm_prefix_vs_rr.py``.
"""
