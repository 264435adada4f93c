#!/usr/bin/python3
"""Fit polynomial activations / compare with PRISM. Run with --help."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from veil_tools.fit_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
