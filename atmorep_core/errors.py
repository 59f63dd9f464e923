"""Errors a user can cause. The CLI maps each type to one line and an exit code."""


class AtmorepError(Exception):
    """Base class of every error the user can cause and fix."""

    exit_code = 1


class InputDataError(AtmorepError):
    """An input file is unreadable, incomplete or inconsistent (corrupt GRIB, NaN, gaps)."""

    exit_code = 3


class MissingInputError(InputDataError):
    """Input times a product needs are not (yet) there: a cron job may retry later."""

    exit_code = 6


class StoreError(AtmorepError):
    """The store does not exist, is not a store, or does not match the input (grid, levels)."""

    exit_code = 4


class StoreBusyError(AtmorepError):
    """Another process holds the store's lock."""

    exit_code = 5


class ConfigError(AtmorepError):
    """A recipe or option is invalid; the message names the key."""

    exit_code = 2


class StoreUpdatingError(MissingInputError):
    """A reader found an ingest in progress (its undo journal): retry once it has committed."""


class FileSystemError(AtmorepError):
    """Cannot read or write a path: disk full, read-only file system, permission, wrong type."""

    exit_code = 7


class CheckpointError(StoreError):
    """A checkpoint or run folder is missing, incomplete or corrupt (its weights, its state)."""
