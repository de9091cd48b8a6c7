"""``python -m vitprune_export.cli``: the same as the ``vitprune`` command."""

from . import main

main()
