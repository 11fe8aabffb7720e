/**
 * Schema versions, applied in order inside one transaction each; the version
 * reached is kept in PRAGMA user_version. Never edit a shipped step: add one.
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE access_keys (
    id TEXT PRIMARY KEY,
    secret_sealed TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    allowed_actions TEXT NOT NULL,
    is_root INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
  );
  -- At most one root key, even when several nodes start on an empty database at once.
  CREATE UNIQUE INDEX access_keys_one_root ON access_keys (is_root) WHERE is_root = 1;
  CREATE TABLE nonces (
    key_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (key_id, nonce)
  ) WITHOUT ROWID;
  CREATE INDEX nonces_expiry ON nonces (expires_at);
  CREATE TABLE access_tokens (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    code_sealed TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    count INTEGER NOT NULL,
    registered_count INTEGER NOT NULL DEFAULT 0,
    ttl_days INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    ip_address_range TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    CHECK (registered_count <= count)
  );
  CREATE INDEX access_tokens_name ON access_tokens (name, seq);
  CREATE TABLE client_tokens (
    owner_key_id TEXT NOT NULL,
    client_token TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    access_token_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (owner_key_id, client_token)
  ) WITHOUT ROWID;
  CREATE TABLE token_uses (
    access_token_id TEXT NOT NULL,
    machine_id TEXT NOT NULL,
    used_at INTEGER NOT NULL,
    PRIMARY KEY (access_token_id, machine_id)
  ) WITHOUT ROWID;
  CREATE TABLE sources (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    key_id TEXT NOT NULL UNIQUE,
    key_sealed TEXT NOT NULL,
    access_token_id TEXT NOT NULL,
    machine_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    hostname TEXT NOT NULL,
    platform TEXT NOT NULL,
    architecture TEXT NOT NULL,
    kernel_level INTEGER,
    agent_version TEXT NOT NULL,
    system_disk_size INTEGER,
    data_disks TEXT NOT NULL,
    system_info TEXT NOT NULL,
    status_info TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    first_import_at INTEGER NOT NULL,
    last_import_at INTEGER NOT NULL,
    first_client_ip TEXT NOT NULL,
    last_client_ip TEXT NOT NULL,
    last_heartbeat_at INTEGER NOT NULL
  );
  CREATE INDEX sources_token ON sources (access_token_id, seq);
  CREATE INDEX sources_name ON sources (name, seq);
  `,
  // ListAccessTokens without a filter answers TotalCount from this counter instead of
  // COUNT(*), which reads the whole table (a million codes: tens of milliseconds).
  // Triggers keep it exact for every writer of the file, whatever process it is.
  `
  CREATE TABLE access_token_count (one INTEGER PRIMARY KEY CHECK (one = 1), n INTEGER NOT NULL);
  INSERT INTO access_token_count (one, n) SELECT 1, COUNT(*) FROM access_tokens;
  CREATE TRIGGER access_tokens_count_insert AFTER INSERT ON access_tokens
    BEGIN UPDATE access_token_count SET n = n + 1 WHERE one = 1; END;
  CREATE TRIGGER access_tokens_count_delete AFTER DELETE ON access_tokens
    BEGIN UPDATE access_token_count SET n = n - 1 WHERE one = 1; END;
  `,
  // Every list filter is a predicate on indexed columns (issue 10): `closed` (disabled or
  // used up) is derived by SQLite itself, so no write path can forget it; a Status is then
  // `closed` and a comparison of expires_at with the clock. Sources get a counter like
  // codes, and an index for the Available/Unavailable filter.
  `
  ALTER TABLE access_tokens ADD COLUMN closed INTEGER
    GENERATED ALWAYS AS (CASE WHEN disabled <> 0 OR registered_count >= count THEN 1 ELSE 0 END) VIRTUAL;
  CREATE INDEX access_tokens_closed_seq ON access_tokens (closed, seq);
  CREATE INDEX access_tokens_closed_expiry ON access_tokens (closed, expires_at);
  CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);
  CREATE INDEX sources_heartbeat ON sources (last_heartbeat_at);
  CREATE TABLE source_count (one INTEGER PRIMARY KEY CHECK (one = 1), n INTEGER NOT NULL);
  INSERT INTO source_count (one, n) SELECT 1, COUNT(*) FROM sources;
  CREATE TRIGGER sources_count_insert AFTER INSERT ON sources
    BEGIN UPDATE source_count SET n = n + 1 WHERE one = 1; END;
  CREATE TRIGGER sources_count_delete AFTER DELETE ON sources
    BEGIN UPDATE source_count SET n = n - 1 WHERE one = 1; END;
  `,
  // Tags (API.md 5.3) and approval (5.4). One row per (resource, key); list filters look tags
  // up by (type, key, value), and a page's tags by the primary key. Existing sources are Approved.
  `
  ALTER TABLE access_tokens ADD COLUMN require_approval INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE sources ADD COLUMN approval_status TEXT NOT NULL DEFAULT 'Approved';
  CREATE INDEX sources_approval ON sources (approval_status, seq);
  CREATE TABLE tags (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (resource_type, resource_id, key)
  ) WITHOUT ROWID;
  CREATE INDEX tags_by_tag ON tags (resource_type, key, value, resource_id);
  `,
  // Audit events and webhooks (issue 15, API.md 5.5 and 5.6). Events are written in the
  // transaction of their change and ordered by `seq`; the trigger queues one delivery per
  // subscribed webhook in that same transaction (ExpiringSoon is queued per webhook by its
  // sweep, each webhook having its own lead time). `sources.offline` marks a source whose
  // Offline event was recorded, so each transition is recorded once.
  `
  CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    event_time INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    actor_key_id TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    request_id TEXT NOT NULL,
    detail TEXT NOT NULL
  );
  CREATE INDEX audit_events_time ON audit_events (event_time);
  CREATE INDEX audit_events_resource ON audit_events (resource_id, seq);
  CREATE INDEX audit_events_type ON audit_events (event_type, seq);
  ALTER TABLE sources ADD COLUMN offline INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX sources_online_heartbeat ON sources (last_heartbeat_at) WHERE offline = 0;
  CREATE TABLE webhooks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,
    expiring_soon_days INTEGER NOT NULL,
    secret_sealed TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    next_position INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE webhook_deliveries (
    webhook_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    event_seq INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    first_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_status_code INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, position)
  ) WITHOUT ROWID;
  CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, position) WHERE status = 'pending';
  CREATE INDEX webhook_deliveries_status ON webhook_deliveries (webhook_id, status, position);
  CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
  CREATE TABLE expiry_notices (
    webhook_id TEXT NOT NULL,
    access_token_id TEXT NOT NULL,
    PRIMARY KEY (webhook_id, access_token_id)
  ) WITHOUT ROWID;
  CREATE TRIGGER audit_events_fan_out AFTER INSERT ON audit_events WHEN NEW.event_type <> 'AccessToken.ExpiringSoon'
    BEGIN
      INSERT INTO webhook_deliveries (webhook_id, position, event_seq, created_at, next_attempt_at)
        SELECT id, NEW.seq, NEW.seq, NEW.event_time, NEW.event_time FROM webhooks
        WHERE instr(event_types, ',' || NEW.event_type || ',') > 0;
    END;
  `,
];
