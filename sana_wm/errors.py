"""The one exception type for bad user input.

Library code raises :class:`InputError` with a message that names the input and what is wrong with it
(for example ``--action: segment 2 'w5' has no '-' between keys and duration``). The CLI turns it into
one line on stderr and exit code 2; no traceback, no partial output file.
"""

from __future__ import annotations


class InputError(ValueError):
    """Invalid user input. ``str(err)`` is the complete one-line message shown to the user."""
