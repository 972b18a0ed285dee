"""`python -m excap`: the `excap` command line."""

import sys

from excap.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
