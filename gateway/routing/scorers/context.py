"""What a plugin's constructor may use besides its own parameters."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BuildContext:
    rng: random.Random
    prefix_block_chars: int = 256
