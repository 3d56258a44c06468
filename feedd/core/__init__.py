"""The pure core: parse, fingerprint and decide.

Nothing in this package touches a database, a clock or the filesystem; it works
on bytes, strings and frozen dataclasses so it can be tested exhaustively.
"""
