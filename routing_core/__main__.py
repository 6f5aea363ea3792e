"""Entry point of ``python -m routing_core``."""

import sys

from routing_core.cli import main

sys.exit(main())
