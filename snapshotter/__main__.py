"""``python -m snapshotter``: the same as the ``snapshotter`` console script."""

import sys

from snapshotter.cli import main

sys.exit(main())
