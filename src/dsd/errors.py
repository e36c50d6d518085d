"""User-facing errors: each prints as one clear line, never a traceback."""


class DsdError(Exception):
    """Base of every error the CLI reports as a single line."""


class ConfigError(DsdError):
    """An invalid scenario config; the message names the field path."""


class DataError(DsdError):
    """An invalid input file (trace, dataset, profile); the message names file and line."""
