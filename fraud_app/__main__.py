"""``python -m fraud_app``: the command-line interface."""

import sys

from fraud_app.cli import main

if __name__ == "__main__":
    sys.exit(main())
