"""``python -m loadtests``: the same as the ``loadtest`` console script."""

import sys

from loadtests.cli import main

sys.exit(main())
