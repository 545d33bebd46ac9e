"""The SQLite store: settings, extensions, registrar bindings and CDRs.

`Store` is the only place in DeskPBX that writes SQL (design.md). Import the
public names from here: `from pbx.store import Store, Extension, UnknownExtension`.
"""

from pbx.store.errors import (
    DuplicateExtension,
    InvalidValue,
    StoreError,
    StoreUnavailable,
    UnknownExtension,
    WeakPassword,
)
from pbx.store.rows import (
    MIN_PASSWORD_LENGTH,
    Binding,
    Cdr,
    Disposition,
    Extension,
    HangupSide,
    PermissionClass,
    RecordPolicy,
)
from pbx.store.schema import DB_FILENAME, SCHEMA_VERSION
from pbx.store.store import DEFAULT_REALM, Store

__all__ = [
    "DB_FILENAME",
    "DEFAULT_REALM",
    "MIN_PASSWORD_LENGTH",
    "SCHEMA_VERSION",
    "Binding",
    "Cdr",
    "Disposition",
    "DuplicateExtension",
    "Extension",
    "HangupSide",
    "InvalidValue",
    "PermissionClass",
    "RecordPolicy",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UnknownExtension",
    "WeakPassword",
]
