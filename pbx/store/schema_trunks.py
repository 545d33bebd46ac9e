"""Schema migration for trunks, outbound routes, DIDs and ring groups (trunks issue).

Appended to pbx.store.schema.MIGRATIONS in a fixed slot, so features built
side by side never fight over one list. Once released, never edit it: add a
new migration instead.

The carrier password is stored as given (not as an HA1): the HA1 of a digest
answer depends on the realm (RFC 7616 §3.4.2), and we learn a carrier's realm
only from its first 401/407. The database file is created 0600 (schema.py).
A route's trunks live in `route_trunks` in failover order; removing a trunk
removes it from every route (ON DELETE CASCADE), removing a route its list.
"""

MIGRATION = """
CREATE TABLE trunks (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL DEFAULT 5060,
    transport TEXT NOT NULL DEFAULT 'UDP',
    domain TEXT NOT NULL DEFAULT '',
    username TEXT NOT NULL DEFAULT '',
    password TEXT NOT NULL DEFAULT '',
    register INTEGER NOT NULL DEFAULT 0,
    expiry INTEGER NOT NULL DEFAULT 3600,
    outbound_proxy TEXT NOT NULL DEFAULT '',
    caller_id TEXT NOT NULL DEFAULT '',
    prefix TEXT NOT NULL DEFAULT '',
    max_calls INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    qualify INTEGER NOT NULL DEFAULT 1,
    send_pai INTEGER NOT NULL DEFAULT 0,
    pass_x_headers INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'unknown',
    status_at REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL DEFAULT 0
);
CREATE TABLE routes (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    patterns TEXT NOT NULL,
    strip INTEGER NOT NULL DEFAULT 0,
    prepend TEXT NOT NULL DEFAULT '',
    caller_id TEXT NOT NULL DEFAULT '',
    permission TEXT NOT NULL DEFAULT 'national',
    strategy TEXT NOT NULL DEFAULT 'priority'
);
CREATE TABLE route_trunks (
    route TEXT NOT NULL REFERENCES routes (name) ON DELETE CASCADE,
    trunk TEXT NOT NULL REFERENCES trunks (name) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    PRIMARY KEY (route, trunk)
);
CREATE TABLE ring_groups (
    number TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    strategy TEXT NOT NULL DEFAULT 'all',
    ring_timeout INTEGER NOT NULL DEFAULT 20,
    members TEXT NOT NULL
);
CREATE TABLE dids (
    number TEXT PRIMARY KEY,
    target_kind TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    trunk TEXT REFERENCES trunks (name) ON DELETE CASCADE
)
"""


#: Outbound routes carry a recording policy (always / never / on demand), combined
#: with the extensions' by the recording manager: the strongest wins.
TRUNK_SRV = "ALTER TABLE trunks ADD COLUMN srv INTEGER NOT NULL DEFAULT 0"
"""A trunk may name a domain whose SIP servers DNS SRV records list (RFC 3263)."""

TRUNK_MATCH = "ALTER TABLE trunks ADD COLUMN match_networks TEXT NOT NULL DEFAULT ''"
"""Networks a carrier's calls come from besides its host (comma-separated CIDRs)."""

ROUTE_RECORDING = (
    "ALTER TABLE routes ADD COLUMN record_policy TEXT NOT NULL DEFAULT 'never' "
    "CHECK (record_policy IN ('always', 'never', 'on_demand'))"
)
