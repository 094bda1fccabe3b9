"""``python -m hub.cli``: what the supervisor runs for each worker process."""

import sys

from hub.cli.main import main

sys.exit(main())
