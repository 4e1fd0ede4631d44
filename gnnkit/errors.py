"""User-facing errors.

Every error gnnkit raises on bad input derives from :class:`GnnkitError`, so the CLI can print its
message on one line and exit with status 2 instead of a traceback.
"""


class GnnkitError(Exception):
    """A problem with the user's input or environment, stated in words."""


class GraphValidationError(GnnkitError, ValueError):
    """A graph that fails :func:`gnnkit.data.validate`; the message names the field."""


class CheckpointError(GnnkitError):
    """A checkpoint that cannot be read or does not belong to the model being trained."""
