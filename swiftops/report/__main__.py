"""python -m swiftops.report SWEEP_DIR [-o FILE]: the report of a sweep, rebuilt from disk."""

import sys

from swiftops.report.render import main

sys.exit(main())
