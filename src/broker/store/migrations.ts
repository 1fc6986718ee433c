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
  {
    version: 2,
    name: 'releases',
    common: [
      // One row per resource handed out to a session, written in the release's audit transaction
      // before the JWE leaves the broker: the key refuses a second release of a resource to one
      // attested session (one nonce), across replicas and restarts. Kept after the session is purged.
      `CREATE TABLE releases (
        session_id TEXT NOT NULL,
        resource_path TEXT NOT NULL,
        at BIGINT NOT NULL,
        evidence_digest TEXT,
        CONSTRAINT releases_once UNIQUE (session_id, resource_path)
      )`,
      'CREATE INDEX releases_at ON releases (at)',
    ],
    sqlite: [],
    postgres: [],
  },
  {
    version: 5,
    name: 'console',
    common: [
      // One row per attestation attempt that reached the evidence, with the appraised claims and
      // the trust report (JSON) for the console; the audit log stays the record of the decision.
      `CREATE TABLE attestations (
        id TEXT PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        tee TEXT NOT NULL,
        platform TEXT,
        verdict TEXT NOT NULL CHECK (verdict IN ('allow', 'deny')),
        policy TEXT,
        rule TEXT,
        problem TEXT,
        detail TEXT,
        evidence_digest TEXT,
        binding TEXT,
        claims TEXT,
        report TEXT,
        remote TEXT
      )`,
      'CREATE INDEX attestations_at ON attestations (at)',
      // Web console sessions: the id is SHA-256 of the cookie, never the cookie itself.
      `CREATE TABLE console_sessions (
        id TEXT PRIMARY KEY,
        token_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      )`,
      'CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at)',
    ],
    sqlite: [],
    postgres: [],
  },
  {
    // Volume keys, trusted keys (reference-value signers, pinned TPM AKs, TPM AK roots) and
    // signed reference-value documents (src/broker/volumes.ts, src/broker/refvalues.ts).
    version: 3,
    name: 'volumes-trust-refvalues',
    common: [
      `CREATE TABLE volumes (
        id TEXT PRIMARY KEY,
        label TEXT,
        identity TEXT NOT NULL,
        policy_text TEXT NOT NULL,
        policy_sha256 TEXT NOT NULL,
        kek_id TEXT NOT NULL,
        wrapped_key BLOB NOT NULL,
        iv BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        tag BLOB NOT NULL,
        alg TEXT NOT NULL,
        key_version INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'revoked')),
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        updated_at BIGINT NOT NULL,
        updated_by TEXT NOT NULL,
        revoked_at BIGINT,
        revoked_by TEXT
      )`,
      `CREATE TABLE trusted_keys (
        purpose TEXT NOT NULL CHECK (purpose IN ('reference-signer', 'tpm-ak', 'tpm-ak-root')),
        name TEXT NOT NULL,
        pem TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (purpose, name)
      )`,
      `CREATE TABLE reference_values (
        name TEXT PRIMARY KEY,
        image_id TEXT NOT NULL,
        image_version TEXT NOT NULL,
        jws TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        signer TEXT NOT NULL,
        updated_at BIGINT NOT NULL,
        updated_by TEXT NOT NULL
      )`,
    ],
    sqlite: [],
    postgres: [],
  },
  {
    version: 4,
    name: 'kek registry',
    common: [
      // Every KEK the store has used, where it lives (never its value, never a PIN) and its state:
      // one `current` (the partial unique index), older ones `retiring` while rotate-kek re-wraps
      // their data keys, `retired` when none is left.
      `CREATE TABLE keks (
        id TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('current', 'retiring', 'retired')),
        created_at BIGINT NOT NULL,
        retired_at BIGINT
      )`,
      "CREATE UNIQUE INDEX keks_one_current ON keks (state) WHERE state = 'current'",
      'CREATE INDEX secrets_kek_id ON secrets (kek_id)',
      'CREATE INDEX volumes_kek_id ON volumes (kek_id)',
    ],
    sqlite: [
      // A secret is never (re)written under a retired KEK: a put that wrapped under the old KEK
      // just before the rotation finished fails rather than leave a key no one keeps.
      "CREATE TRIGGER secrets_kek_not_retired_insert BEFORE INSERT ON secrets WHEN EXISTS (SELECT 1 FROM keks WHERE id = NEW.kek_id AND state = 'retired') BEGIN SELECT RAISE(ABORT, 'the KEK is retired'); END",
      "CREATE TRIGGER secrets_kek_not_retired_update BEFORE UPDATE ON secrets WHEN EXISTS (SELECT 1 FROM keks WHERE id = NEW.kek_id AND state = 'retired') BEGIN SELECT RAISE(ABORT, 'the KEK is retired'); END",
      // Volume keys likewise, while they hold key material (a revoked volume keeps its kek_id, erased).
      "CREATE TRIGGER volumes_kek_not_retired_insert BEFORE INSERT ON volumes WHEN NEW.state = 'active' AND EXISTS (SELECT 1 FROM keks WHERE id = NEW.kek_id AND state = 'retired') BEGIN SELECT RAISE(ABORT, 'the KEK is retired'); END",
      "CREATE TRIGGER volumes_kek_not_retired_update BEFORE UPDATE ON volumes WHEN NEW.state = 'active' AND EXISTS (SELECT 1 FROM keks WHERE id = NEW.kek_id AND state = 'retired') BEGIN SELECT RAISE(ABORT, 'the KEK is retired'); END",
    ],
    postgres: [
      `CREATE FUNCTION secrets_kek_not_retired() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF EXISTS (SELECT 1 FROM keks WHERE id = NEW.kek_id AND state = 'retired') THEN
            RAISE EXCEPTION 'the KEK % is retired', NEW.kek_id;
          END IF;
          RETURN NEW;
        END $$`,
      'CREATE TRIGGER secrets_kek_not_retired BEFORE INSERT OR UPDATE ON secrets FOR EACH ROW EXECUTE FUNCTION secrets_kek_not_retired()',
      `CREATE FUNCTION volumes_kek_not_retired() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.state = 'active' AND EXISTS (SELECT 1 FROM keks WHERE id = NEW.kek_id AND state = 'retired') THEN
            RAISE EXCEPTION 'the KEK % is retired', NEW.kek_id;
          END IF;
          RETURN NEW;
        END $$`,
      'CREATE TRIGGER volumes_kek_not_retired BEFORE INSERT OR UPDATE ON volumes FOR EACH ROW EXECUTE FUNCTION volumes_kek_not_retired()',
    ],
  },
  {
    // When the attested VM reported that it formatted the volume under its current key version
    // (POST /kbs/v0/volume-initialized); NULL until then and again after a re-provisioning. The key
    // release tells the VM, so a blank disk presented for an initialized volume is refused, never
    // formatted (src/broker/volumes.ts, src/guest/unlock.ts).
    version: 6,
    name: 'volume-initialized',
    common: ['ALTER TABLE volumes ADD COLUMN initialized_at BIGINT'],
    sqlite: [],
    postgres: [],
  },
  {
    // SQLite: `INSERT OR REPLACE INTO audit (seq, ...)` (also REPLACE, and OR IGNORE or ON CONFLICT
    // on an existing seq) rewrote a record without firing audit_no_delete: REPLACE deletes the
    // conflicting row without delete triggers unless recursive_triggers is on. Refused before the
    // insert, as is an explicit seq at or below the newest (a record slipped into a gap, behind a
    // reader that already paged past it). NEW.seq is -1 when SQLite assigns it, so an explicit -1
    // passes once, then exists.
    // PostgreSQL needs nothing for a rewrite: it has no REPLACE, INSERT ... ON CONFLICT (seq) DO
    // UPDATE fires audit_no_update, and an existing seq (an explicit one needs OVERRIDING SYSTEM
    // VALUE: the column is GENERATED ALWAYS) collides with the primary key. Not refused there: an
    // overriding insert into a gap a rolled-back transaction left in the identity sequence.
    version: 7,
    name: 'audit-no-replace',
    common: [],
    sqlite: [
      `CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit
       WHEN EXISTS (SELECT 1 FROM audit WHERE seq = NEW.seq) OR (NEW.seq <> -1 AND NEW.seq <= (SELECT MAX(seq) FROM audit))
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END`,
    ],
    postgres: [],
  },
];
