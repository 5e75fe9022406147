"""The one base class of the errors a user can fix.

Every error tf-zoneout raises about a user's input, configuration, data, files or runs derives from
``ZoneoutError`` (and from the built-in class its callers expect, ``ValueError`` or
``RuntimeError``), with a message that says what is wrong and how to fix it. The ``zoneout``
commands print such an error as one line; any other exception, TensorFlow's included, keeps its
traceback.
"""

from __future__ import annotations


class ZoneoutError(Exception):
    """A problem the user can fix; the message says how."""
