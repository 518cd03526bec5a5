"""``python -m mirdeconv.cli``."""

import sys

from . import main

sys.exit(main())
