"""`python -m mumoe_ext ...` is the `mumoe` command."""
import sys

from .cli import main

sys.exit(main())
