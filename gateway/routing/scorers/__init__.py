"""Scorers: each rates every candidate in [0, 1] (higher is better) and declares what it reads.

One per module, each with a ``TYPE`` name, a ``Params`` struct (its TOML keys) and a docstring with its
formula; ``routing.presets`` registers them and weighs them into presets.
"""
