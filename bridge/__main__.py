"""`python -m bridge`: the same as the `hearth-bridge` command."""

from .cli import main

main()
