"""``python -m llmsynthor.cli``: the ``llmsynthor`` command."""

from .app import main

main()
