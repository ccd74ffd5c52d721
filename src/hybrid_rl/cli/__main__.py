"""`python -m hybrid_rl.cli`: the same as `hybrid-rl`."""

import sys

from hybrid_rl.cli import main

sys.exit(main())
