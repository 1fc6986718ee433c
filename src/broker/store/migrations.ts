/**
 * Versioned schema migrations. The SQL is kept portable between SQLite and PostgreSQL (BIGINT
 * times, TEXT, no SQLite-only types) except where marked: each migration has a `common` part and
 * per-dialect parts. Applied versions are recorded in `schema_migrations`; a migration is never
 * edited once released, only followed by another.
 */
export interface Migration {
  version: number;
  name: string;
  common: readonly string[];
  /** SQLite-only statements (append-only triggers). */
  sqlite: readonly string[];
  /** PostgreSQL-only statements (for the PostgreSQL store; not applied by SQLite). */
  postgres: readonly string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial',
    common: [
      `CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        tee TEXT NOT NULL,
        version TEXT NOT NULL,
        nonce TEXT NOT NULL,
        hash_alg TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        nonce_expires_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        nonce_used_at BIGINT,
        attested_at BIGINT,
        tee_pubkey TEXT,
        tee_pubkey_jkt TEXT,
        binding TEXT,
        evidence_digest TEXT,
        claims TEXT,
        token_id TEXT
      )`,
      'CREATE INDEX sessions_expires_at ON sessions (expires_at)',
      `CREATE TABLE evidence_seen (
        digest TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        seen_at BIGINT NOT NULL
      )`,
      // BLOB: the PostgreSQL store maps it to BYTEA when it applies `common` (the one type spelt differently).
      `CREATE TABLE secrets (
        path TEXT PRIMARY KEY,
        kek_id TEXT NOT NULL,
        wrapped_key BLOB NOT NULL,
        iv BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        tag BLOB NOT NULL,
        alg TEXT NOT NULL,
        size INTEGER NOT NULL,
        version INTEGER NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        updated_by TEXT NOT NULL
      )`,
      `CREATE TABLE policies (
        prefix TEXT PRIMARY KEY,
        policy_id TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        text TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        updated_at BIGINT NOT NULL,
        updated_by TEXT NOT NULL
      )`,
      `CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'provisioner')),
        scope TEXT,
        label TEXT,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
      )`,
    ],
    sqlite: [
      // Declared here rather than in `common` only for the key column: AUTOINCREMENT is SQLite's
      // (PostgreSQL: seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY).
      `CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        resource TEXT,
        evidence_digest TEXT,
        verdict TEXT NOT NULL CHECK (verdict IN ('allow', 'deny')),
        rule TEXT,
        problem TEXT,
        detail TEXT,
        remote TEXT
      )`,
      'CREATE INDEX audit_at ON audit (at)',
      'CREATE INDEX audit_action ON audit (action, at)',
      "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
      "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    ],
    postgres: [
      `CREATE TABLE audit (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        resource TEXT,
        evidence_digest TEXT,
        verdict TEXT NOT NULL CHECK (verdict IN ('allow', 'deny')),
        rule TEXT,
        problem TEXT,
        detail TEXT,
        remote TEXT
      )`,
      'CREATE INDEX audit_at ON audit (at)',
      'CREATE INDEX audit_action ON audit (action, at)',
      `CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$`,
      'CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only()',
      'CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()',
    ],
  },
];
