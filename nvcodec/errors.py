"""The errors a user can cause, in one family (torch-free).

``NvcError`` (defined with the container layer, which raises ``NvcFormatError`` for bad
bytes) is their base: the command line prints any of them as one line and exits 1;
any other exception is a bug in nvcodec and is reported as one. ``NvcInputError``
covers bad input and settings: an output that exists, contradictory options, a
value outside its range. Like ``NvcFormatError`` it is a ``ValueError``.
"""

from nvcodec.bitstream.errors import NvcError, NvcFormatError

__all__ = ["NvcError", "NvcFormatError", "NvcInputError"]


class NvcInputError(NvcError, ValueError):
    """The input or the settings given cannot be coded as asked; the message says which and why."""
