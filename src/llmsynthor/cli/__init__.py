"""The ``llmsynthor`` command-line interface (``llmsynthor --help``).

* :mod:`.app` — the commands, each dispatched once to the spec's record shape;
* :mod:`.registry` — which shape a spec is (``kind:``) and its commands;
* :mod:`.flat`, :mod:`.households` — each shape's command bodies (what they check, print, write);
* :mod:`.common` — consoles, exit statuses, errors, interruptions; :mod:`.options` — what commands pass on.
"""

from .app import app, main

__all__ = ["app", "main"]
