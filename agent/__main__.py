"""``python -m agent ...`` is ``edge-agent ...``."""

import sys

from agent.cli import main

sys.exit(main())
