import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuditInput, Role, Store, TokenRecord } from './store/types.js';

/**
 * Admin bearer tokens: `coffer_<id>_<secret>`, 256 random bits of secret. The store keeps only
 * SHA-256 of the whole string (enough for a high-entropy random token: no password stretching
 * needed) and looks the record up by the public id, then compares hashes in constant time.
 */
const TOKEN = /^coffer_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The id part of a well-formed token (safe to log), or undefined. */
export function tokenId(token: string): string | undefined {
  return TOKEN.exec(token)?.[1];
}

export interface NewToken {
  token: string;
  record: TokenRecord;
}

/** Creates a token; `audit` (given the new token's id) is written in the same transaction. */
export async function createToken(store: Store, role: Role, opts: { scope?: string; label?: string; at: number }, audit?: (id: string) => AuditInput): Promise<NewToken> {
  const id = randomBytes(8).toString('hex');
  const token = `coffer_${id}_${randomBytes(32).toString('base64url')}`;
  const record: TokenRecord = { id, hash: hashToken(token), role, createdAt: opts.at, ...(opts.scope ? { scope: opts.scope } : {}), ...(opts.label ? { label: opts.label } : {}) };
  await store.createToken(record, audit?.(id));
  return { token, record };
}

export type TokenCheck = { ok: true; record: TokenRecord } | { ok: false; id?: string; why: string };

export async function checkToken(store: Store, token: string): Promise<TokenCheck> {
  const id = tokenId(token);
  if (id === undefined) return { ok: false, why: 'not a Coffer admin token' };
  const rec = await store.getToken(id);
  const want = Buffer.from(rec?.hash ?? '0'.repeat(64), 'hex');
  const got = Buffer.from(hashToken(token), 'hex');
  const same = timingSafeEqual(want, got);
  if (!rec || !same) return { ok: false, id, why: 'unknown token' };
  if (rec.revokedAt !== undefined) return { ok: false, id, why: 'revoked token' };
  return { ok: true, record: rec };
}
