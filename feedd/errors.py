"""One exception root for everything feedd raises on purpose.

Each subclass carries a default message that says what to do, so the CLI can
print ``str(exc)`` as one line and exit without a traceback.
"""

from __future__ import annotations


class FeeddError(Exception):
    """Root of every error feedd raises deliberately."""

    default_message = "feedd failed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(FeeddError):
    """The configuration is wrong; the message names the key path."""

    default_message = "invalid configuration; check config.toml"


class InvalidDump(FeeddError):
    """A file is not a readable dump. The reason is recorded and the file set aside."""

    default_message = "not a dump"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)

    @property
    def reason(self) -> str:
        return self.message


class DumpVanished(FeeddError):
    """The file disappeared between listing and reading: nothing to record or set
    aside (another worker took it, or a person moved it). Not an InvalidDump."""

    default_message = "the file vanished before it could be read"


class Interrupted(FeeddError):
    """A stop was asked for in the middle of a dump; its transaction was rolled
    back, so the dump is ingested whole at the next start."""

    default_message = "stopped in the middle of a dump; it was rolled back and stays pending"


class StorageError(FeeddError):
    """The database could not be reached or refused the operation (not a bug)."""

    default_message = "the database is unavailable; check database.url and that the server runs"


class DatabaseBusy(StorageError):
    """The server is there but turned the connection away for now (too many
    clients, starting up, shutting down) or the network dropped it: worth a
    retry, unlike a wrong URL or password."""

    default_message = "the database server is busy; try again in a moment"


class DatabaseLocked(StorageError):
    default_message = (
        "the database is locked by another writer; it will be retried on the next scan"
    )


class AlreadyRunning(FeeddError):
    default_message = (
        "another feedd daemon already runs on this SQLite database; stop it first "
        "(or use PostgreSQL for several workers)"
    )


class ArticleNotFound(FeeddError):
    default_message = "no such article; list them with `feedd articles`"


class InvalidQuery(FeeddError):
    """A search query that cannot be run as given; the message says why."""

    default_message = "invalid search query"
