"""Phase II of hybrid-rl: the same as `hybrid-rl phase2 ...` (see `--help`)."""

import sys

from hybrid_rl.cli import main

if __name__ == "__main__":
    sys.exit(main(["phase2", *sys.argv[1:]]))
