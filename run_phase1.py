"""Phase I of hybrid-rl: the same as `hybrid-rl phase1 ...` (see `--help`)."""

import sys

from hybrid_rl.cli import main

if __name__ == "__main__":
    sys.exit(main(["phase1", *sys.argv[1:]]))
