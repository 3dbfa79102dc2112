"""``python -m fastflow``."""

import sys

from fastflow.cli import main

sys.exit(main())
