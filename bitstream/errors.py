"""The one exception type of the bitstream layer (FORMAT.md section 1, "Errors"), and the
base of every error a user can cause.

Bad bytes from a file raise NvcFormatError; bad calls from code raise plain
ValueError / TypeError.  NvcFormatError is a ValueError so callers that catch
ValueError for "bad input" keep working.  ``NvcError`` is the base of the errors
a user can cause (a bad file here; bad input or settings in ``nvcodec.errors``):
the command line reports those in one line and treats anything else as a bug.
"""


class NvcError(Exception):
    """Base of every error caused by what the user gave (a file, a video, an option), not by a bug."""


class NvcFormatError(NvcError, ValueError):
    """An .nvc file (or an entropy-coded array) is malformed; the message says what and where."""


def at_chunk(chunk_type: str, offset_bytes: int, what: str) -> NvcFormatError:
    """The error for a problem inside a chunk: ``chunk 'TYPE' at byte N: what``."""
    return NvcFormatError(f"chunk {chunk_type!r} at byte {offset_bytes}: {what}")
