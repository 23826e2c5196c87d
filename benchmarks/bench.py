"""``sana-wm bench`` as a script: ``python benchmarks/bench.py --out benchmarks/results/x.json [flags]``."""

import sys

from sana_wm.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
