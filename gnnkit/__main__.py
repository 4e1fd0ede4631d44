"""``python -m gnnkit`` (also what ``torchrun -m gnnkit`` runs)."""
import sys

from .cli import main

sys.exit(main())
