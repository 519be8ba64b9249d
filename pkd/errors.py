"""Error types. Every error a user can cause is a PkdError: the CLI prints its one-line message and exits
with its code (2 for usage or data errors, 1 for runtime failures), never a traceback."""


class PkdError(Exception):
    exit_code = 2


class UsageError(PkdError):
    """A bad argument or option."""


class DataError(PkdError):
    """A data file, model, cache or checkpoint that cannot be used as it is."""


class TrainingError(PkdError):
    """A failure while running, such as a non-finite loss."""

    exit_code = 1


class ExportError(PkdError):
    """An export that does not reproduce its source (the parity check)."""

    exit_code = 1
