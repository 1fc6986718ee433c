import { inputError } from '../../errors.js';
import { PostgresStore, isPostgresUrl, redactPostgresUrl, type PostgresOptions } from './postgres.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './types.js';

/**
 * Opens the store a broker is configured with: `postgres://…` or `postgresql://…` (several
 * replicas), `sqlite:PATH` or a plain file path (the embedded store). Any other `scheme://` is
 * refused rather than taken for a file name.
 */
export async function openStore(spec: string, o: { postgres?: PostgresOptions } = {}): Promise<Store> {
  if (isPostgresUrl(spec)) return PostgresStore.open(spec, o.postgres ?? {});
  return SqliteStore.open(sqlitePath(spec));
}

function sqlitePath(spec: string): string {
  if (/^sqlite:/i.test(spec)) {
    // sqlite:relative.db, sqlite:/abs.db, sqlite:///abs.db
    const p = spec.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (p === '') throw inputError('STORE_BAD_URL', 'sqlite: needs a file path, e.g. sqlite:/var/lib/coffer/broker.db');
    // sqlite://name.db would otherwise be the absolute //name.db (= /name.db), not ./name.db.
    if (/^\/\/(?!\/)/.test(p)) throw inputError('STORE_BAD_URL', `${spec.slice(0, 200)}: sqlite:// takes no host: give sqlite:relative.db, sqlite:/abs.db or sqlite:///abs.db`);
    return p;
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec)?.[1];
  if (scheme !== undefined) throw inputError('STORE_BAD_URL', `unsupported store ${scheme}://: give postgres://…, postgresql://…, sqlite:PATH or a file path`);
  if (spec === '') throw inputError('STORE_BAD_URL', 'the store is empty: give a file path or a postgres:// URL');
  return spec;
}

/** The store spec as it may be shown: a PostgreSQL URL without password or query. */
export function describeStore(spec: string): string {
  return isPostgresUrl(spec) ? redactPostgresUrl(spec) : sqlitePath(spec);
}
