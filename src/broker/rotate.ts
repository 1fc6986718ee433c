import { CofferError, inputError } from '../errors.js';
import { KekRing, openKek, type SingleKek } from './kek.js';
import type { AuditInput, Store } from './store/types.js';

/**
 * KEK rotation: make a new KEK current, re-wrap every secret's data key under it, then retire
 * the old KEK(s). Covers secrets and the keys of active provisioned volumes (volumes.ts). Only
 * the 40-byte wrapped data keys change: values, IVs and versions stay.
 *
 * - No downtime: the new KEK is recorded as current first, so a running broker (KekRing) wraps
 *   new writes under it at once, and reads keep unwrapping with whichever KEK each secret
 *   records, opening the new one from the store's registry when it first meets it.
 * - One secret per transaction: a compare-and-swap on (kek_id, wrapped_key) with its audit
 *   record; a secret rewritten meanwhile (a put under the new KEK) is left alone.
 * - Resumable and idempotent: every step reads the store's state, so re-running after a crash
 *   (or running again when done) finishes the job or does nothing.
 * - The old KEK is retired only once no secret names it (checked in the retiring statement);
 *   after that the schema refuses any secret written under it.
 */

export interface RotateOptions {
  store: Store;
  /** The new KEK: `file:PATH`, a path, or `pkcs11:...`; created when missing. */
  to: string;
  /** Default: `Date.now`. */
  now?: () => number;
  /** Who runs it, for the audit log (`cli:<user>`). */
  actor?: string;
  env?: NodeJS.ProcessEnv;
  /** Called after each secret or volume key (`volumes/<id>/key`) is re-wrapped (progress; tests stop a rotation here). */
  onRewrapped?: (path: string, done: number, total: number) => void | Promise<void>;
}

export interface RotateResult {
  /** The KEK now current. */
  kekId: string;
  spec: string;
  created: boolean;
  /** Whether this run made it current (false: it already was, e.g. a resumed rotation). */
  switched: boolean;
  /** Secrets and active volume keys re-wrapped by this run. */
  rewrapped: number;
  /** KEKs retired by this run. */
  retired: string[];
  /** Secrets per KEK id after the run. */
  counts: Record<string, number>;
  /** Active volume keys per KEK id after the run. */
  volumeCounts: Record<string, number>;
}

/** Rounds of re-wrap then retire: a put that raced the last round under the old KEK is caught by the next. */
const MAX_ROUNDS = 5;

export async function rotateKek(o: RotateOptions): Promise<RotateResult> {
  const now = o.now ?? Date.now;
  const actor = o.actor ?? 'rotate-kek';
  const env = o.env ? { env: o.env } : {};
  // A data key under a KEK the registry does not record (a store from before migration 4 that no
  // broker has opened since) could not be re-wrapped, and once the new KEK is current no start
  // would register the old one: every such secret would be unreadable. Refuse before changing anything.
  const registered = new Set((await o.store.listKeks()).map((k) => k.id));
  const unregistered = [...new Set([...Object.keys(await o.store.countSecretsByKek()), ...Object.keys(await o.store.countVolumesByKek())])].filter((id) => !registered.has(id));
  if (unregistered.length > 0) {
    throw inputError('KEK_UNREGISTERED', `secrets or volume keys are sealed under ${unregistered.join(', ')}, which the store's KEK registry does not record: start the broker once with --kek for that KEK (it registers it), then rotate`);
  }
  const target: SingleKek = openKek(o.to, { ...env, create: true });
  const ring = new KekRing(o.store, target, env);
  const audit = (action: string, extra: Partial<AuditInput>): AuditInput => ({ at: now(), actor, action, verdict: 'allow', ...extra });
  try {
    const switched = await o.store.setCurrentKek({ id: target.currentId, spec: target.spec, at: now() }, audit('kek.rotate', { detail: `KEK ${target.currentId} at ${target.spec} is now current${target.created ? ' (created)' : ''}` }));
    let rewrapped = 0;
    const retired: string[] = [];
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const todo = (await o.store.listSecrets()).filter((s) => s.kekId !== target.currentId);
      const volumes = (await o.store.listVolumes()).filter((v) => v.state === 'active' && v.kekId !== target.currentId);
      const total = todo.length + volumes.length;
      let done = 0;
      for (const meta of todo) {
        // A few attempts per secret: each failed swap means a concurrent put already re-sealed it.
        for (let attempt = 0; attempt < 3; attempt++) {
          const rec = await o.store.getSecret(meta.path);
          if (!rec || rec.kekId === target.currentId) break;
          const dataKey = await ring.unwrap(rec.wrappedKey, rec.kekId);
          let wrapped: Buffer;
          try {
            wrapped = (await target.wrap(dataKey)).wrapped;
          } finally {
            dataKey.fill(0);
          }
          const ok = await o.store.rewrapSecret(
            rec.path,
            { kekId: rec.kekId, wrappedKey: rec.wrappedKey },
            { kekId: target.currentId, wrappedKey: wrapped },
            audit('kek.rewrap', { resource: rec.path, detail: `data key re-wrapped from ${rec.kekId} to ${target.currentId}` }),
          );
          if (ok) {
            rewrapped++;
            done++;
            await o.onRewrapped?.(rec.path, done, total);
            break;
          }
        }
      }
      for (const meta of volumes) {
        for (let attempt = 0; attempt < 3; attempt++) {
          const rec = await o.store.getVolume(meta.id);
          if (!rec || rec.state !== 'active' || rec.kekId === target.currentId) break;
          const dataKey = await ring.unwrap(rec.wrappedKey, rec.kekId);
          let wrapped: Buffer;
          try {
            wrapped = (await target.wrap(dataKey)).wrapped;
          } finally {
            dataKey.fill(0);
          }
          const ok = await o.store.rewrapVolume(
            rec.id,
            { kekId: rec.kekId, wrappedKey: rec.wrappedKey },
            { kekId: target.currentId, wrappedKey: wrapped },
            audit('kek.rewrap', { resource: `volumes/${rec.id}/key`, detail: `volume key re-wrapped from ${rec.kekId} to ${target.currentId}` }),
          );
          if (ok) {
            rewrapped++;
            done++;
            await o.onRewrapped?.(`volumes/${rec.id}/key`, done, total);
            break;
          }
        }
      }
      const old = (await o.store.listKeks()).filter((k) => k.state === 'retiring');
      let left = false;
      for (const k of old) {
        if (await o.store.retireKek(k.id, now(), audit('kek.retire', { detail: `KEK ${k.id} (${k.spec}) retired: no secret is sealed under it` }))) retired.push(k.id);
        else left = true;
      }
      if (!left) break;
      if (round === MAX_ROUNDS - 1) throw new CofferError('KEK_ROTATION_INCOMPLETE', `secrets or volume keys are still sealed under ${old.map((k) => k.id).join(', ')} after ${MAX_ROUNDS} rounds (writes racing the rotation?): run rotate-kek again`);
    }
    return { kekId: target.currentId, spec: target.spec, created: target.created, switched, rewrapped, retired, counts: await o.store.countSecretsByKek(), volumeCounts: await o.store.countVolumesByKek() };
  } finally {
    await ring.close();
  }
}
