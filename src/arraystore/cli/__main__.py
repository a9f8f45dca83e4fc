"""``python -m arraystore.cli``."""

import sys

from . import main

sys.exit(main())
