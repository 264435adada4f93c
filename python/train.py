#!/usr/bin/python3
"""Train, measure, export and verify a veil model. Run with --help for the options."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from veil_tools.train import main  # noqa: E402

if __name__ == "__main__":
    main()
