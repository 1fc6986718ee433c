import { lstatSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { DestinationStream } from 'pino';
import { generateEarSigningKey, loadEarSigningKey, parsePolicy } from '../appraisal/index.js';
import { inputError } from '../errors.js';
import type { ProductAnchor } from '../pki/roots.js';
import { Broker, type RetentionOptions } from './broker.js';
import { ensurePrivateHome, readPrivateFile, writePrivateFile } from './files.js';
import { openBrokerKeks } from './kek.js';
import { buildServer, checkBind } from './server.js';
import { certificateFingerprint, loadOrCreateSelfSigned, spkiPin } from './tls.js';
import { openStore } from './store/open.js';
import { createToken } from './tokens.js';

/**
 * Starting a broker from files: the SQLite store, the KEK file and the token-signing key (each
 * created on first start, keys with mode 0600), an admin token on first start (written 0600 next
 * to the database, never printed), then the HTTP(S) listener.
 */

export const DEFAULT_PORT = 8666;

export interface BrokerPaths {
  home: string;
  db: string;
  kek: string;
  earKey: string;
  adminTokenFile: string;
}

/** Defaults under $COFFER_HOME, else ./.coffer. */
export function brokerPaths(over: { home?: string; db?: string; kek?: string; earKey?: string } = {}, env: NodeJS.ProcessEnv = process.env): BrokerPaths {
  const home = resolve(over.home ?? env.COFFER_HOME ?? '.coffer');
  const db = resolve(over.db ?? join(home, 'broker.db'));
  return { home, db, kek: resolve(over.kek ?? join(home, 'kek.key')), earKey: resolve(over.earKey ?? join(home, 'ear-signing.pem')), adminTokenFile: join(dirname(db), 'admin.token') };
}

export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw inputError('USAGE', `--listen ${s} is not HOST:PORT (e.g. 127.0.0.1:${DEFAULT_PORT}, [::1]:${DEFAULT_PORT})`);
  return { host: (m[1] ?? m[2]) as string, port };
}

function existsNoFollow(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function loadOrCreateEarKey(path: string): { key: KeyObject; created: boolean } {
  if (existsNoFollow(path)) return { key: loadEarSigningKey(readPrivateFile(path, 'the token signing key'), path), created: false };
  const { privateKey, pem } = generateEarSigningKey();
  writePrivateFile(path, pem);
  return { key: privateKey, created: true };
}

export interface StartOptions {
  paths: BrokerPaths;
  host: string;
  port: number;
  tls?: { certFile: string; keyFile: string };
  /** Serve HTTPS with a self-signed ECDSA P-256 certificate kept under the home (tls.ts); not with `tls`. */
  selfSignedTls?: boolean;
  /** PEM CA file: admin routes and /metrics then need a client certificate issued by it (needs TLS). */
  clientCaFile?: string;
  allowInsecureHttp?: boolean;
  attestationPolicyFile?: string;
  logStream?: DestinationStream;
  logLevel?: string;
  rateLimit?: { max: number; timeWindowMs: number };
  nonceTtlSeconds?: number;
  tokenTtlSeconds?: number;
  /** What the periodic purge keeps (Broker RETENTION_DEFAULTS otherwise). */
  retention?: Partial<RetentionOptions>;
  /**
   * The store: `postgres://…`/`postgresql://…` (replicas share it), `sqlite:PATH` or a file path.
   * Default: the SQLite file `paths.db`.
   */
  store?: string;
  /**
   * The KEK: `file:PATH`, a file path, or `pkcs11:module=…;token=…;label=…` (PIN from
   * $COFFER_PKCS11_PIN or pin-env/pin-file). Default: `paths.kek`, created on first start. Once
   * the store records a KEK (first start, rotate-kek), the store's current KEK is used.
   */
  kek?: string;
  /** In-process only, for tests: see BrokerOptions.testOnlySnpRoots. */
  testOnlySnpRoots?: readonly ProductAnchor[];
  clock?: () => Date;
}

export interface RunningBroker {
  url: string;
  app: FastifyInstance;
  broker: Broker;
  paths: BrokerPaths;
  created: { kek: boolean; earKey: boolean; adminToken: boolean };
  /** The store's current KEK at start: its id and where it lives. */
  kek: { id: string; spec: string };
  /** With TLS: the certificate's SHA-256 fingerprint (clients pin it) and whether it is the generated one. */
  tls?: { fingerprint: string; spkiPin: string; selfSigned: boolean; created: boolean; certFile: string };
  close(): Promise<void>;
}

function readClientCa(file: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (e) {
    throw inputError('TLS_BAD_CLIENT_CA', `cannot read the client CA ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    certificateFingerprint(pem);
  } catch {
    throw inputError('TLS_BAD_CLIENT_CA', `the client CA ${file} is not a PEM certificate`);
  }
  return pem;
}

export async function startBroker(o: StartOptions): Promise<RunningBroker> {
  if (o.tls && o.selfSignedTls) throw inputError('USAGE', 'give --tls-cert/--tls-key or --tls-self-signed, not both');
  if (o.clientCaFile !== undefined && !o.tls && !o.selfSignedTls) throw inputError('USAGE', '--client-ca needs TLS (--tls-cert/--tls-key or --tls-self-signed): a client certificate is a TLS feature');
  checkBind(o.host, o.tls !== undefined || o.selfSignedTls === true, o.allowInsecureHttp === true);
  const clientCa = o.clientCaFile !== undefined ? readClientCa(o.clientCaFile) : undefined;
  let tls: { cert: Buffer; key: Buffer; clientCa?: Buffer } | undefined;
  let tlsInfo: RunningBroker['tls'];
  if (o.tls) {
    let cert: Buffer;
    try {
      cert = readFileSync(o.tls.certFile);
    } catch (e) {
      throw inputError('TLS_BAD_CERT', `cannot read the TLS certificate ${o.tls.certFile} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    tls = { cert, key: readPrivateFile(o.tls.keyFile, 'the TLS key') };
    let fingerprint: string;
    let pin: string;
    try {
      fingerprint = certificateFingerprint(tls.cert);
      pin = spkiPin(tls.cert);
    } catch {
      throw inputError('TLS_BAD_CERT', `${o.tls.certFile} is not a PEM certificate`);
    }
    let matches = false;
    try {
      matches = new X509Certificate(tls.cert).checkPrivateKey(createPrivateKey(tls.key));
    } catch {
      throw inputError('TLS_BAD_KEY', `${o.tls.keyFile} is not a PEM private key`);
    }
    if (!matches) throw inputError('TLS_KEY_MISMATCH', `${o.tls.keyFile} is not the private key of the certificate ${o.tls.certFile}`);
    tlsInfo = { fingerprint, spkiPin: pin, selfSigned: false, created: false, certFile: o.tls.certFile };
  }
  let policyText: string | undefined;
  if (o.attestationPolicyFile !== undefined) {
    try {
      policyText = readFileSync(o.attestationPolicyFile, 'utf8');
    } catch (e) {
      throw inputError('POLICY_UNREADABLE', `cannot read the attestation policy ${o.attestationPolicyFile} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  const attestationPolicy = o.attestationPolicyFile !== undefined && policyText !== undefined ? parsePolicy(policyText, o.attestationPolicyFile) : undefined;
  ensurePrivateHome(o.paths.home);
  if (o.selfSignedTls) {
    const m = await loadOrCreateSelfSigned(o.paths.home, o.host);
    tls = { cert: m.cert, key: m.key };
    tlsInfo = { fingerprint: m.fingerprint, spkiPin: m.spkiPin, selfSigned: true, created: m.created, certFile: m.certFile };
  }
  if (tls && clientCa) tls.clientCa = clientCa;
  const ear = loadOrCreateEarKey(o.paths.earKey);
  const store = await openStore(o.store ?? o.paths.db);
  let keks: Awaited<ReturnType<typeof openBrokerKeks>>;
  try {
    keks = await openBrokerKeks(store, { ...(o.kek !== undefined ? { spec: o.kek } : {}), defaultFile: o.paths.kek, at: Date.now() });
  } catch (e) {
    await store.close();
    throw e;
  }
  const kek = keks.ring;
  let adminToken = false;
  if ((await store.countTokens()) === 0) {
    // Audited like any other token: the first admin credential is in the log from the start.
    const t = await createToken(store, 'admin', { at: Date.now(), label: 'bootstrap' }, (id) => ({
      at: Date.now(),
      actor: 'broker',
      action: 'admin.token.create',
      verdict: 'allow',
      detail: `created token:${id} role admin (bootstrap, no token existed)`,
    }));
    try {
      writePrivateFile(o.paths.adminTokenFile, `${t.token}\n`);
      adminToken = true;
    } catch {
      // An old token file is never overwritten; the operator makes a token with `broker token create`.
      await store.revokeToken(t.record.id, Date.now(), {
        at: Date.now(),
        actor: 'broker',
        action: 'admin.token.revoke',
        verdict: 'allow',
        detail: `revoked token:${t.record.id}: the bootstrap token file ${o.paths.adminTokenFile} exists already`,
      });
    }
  }
  const broker = new Broker({
    store,
    kek,
    earKey: ear.key,
    ...(attestationPolicy ? { attestationPolicy } : {}),
    ...(o.testOnlySnpRoots ? { testOnlySnpRoots: o.testOnlySnpRoots } : {}),
    ...(o.clock ? { clock: o.clock } : {}),
    ...(o.nonceTtlSeconds ? { nonceTtlSeconds: o.nonceTtlSeconds } : {}),
    ...(o.tokenTtlSeconds ? { tokenTtlSeconds: o.tokenTtlSeconds } : {}),
    ...(o.retention ? { retention: o.retention } : {}),
  });
  const app = await buildServer({ broker, ...(tls ? { tls } : {}), ...(o.logStream ? { logStream: o.logStream } : {}), ...(o.logLevel ? { logLevel: o.logLevel } : {}), ...(o.rateLimit ? { rateLimit: o.rateLimit } : {}) });
  try {
    await app.listen({ host: o.host, port: o.port });
  } catch (e) {
    await app.close();
    await broker.close();
    throw inputError('BROKER_LISTEN_FAILED', `cannot listen on ${o.host}:${o.port}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const addr = app.server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `${tls ? 'https' : 'http'}://${host}:${addr.port}`,
    app,
    broker,
    paths: o.paths,
    created: { kek: keks.created, earKey: ear.created, adminToken },
    kek: { id: keks.current.id, spec: keks.current.spec },
    ...(tlsInfo ? { tls: tlsInfo } : {}),
    close: async () => {
      await app.close();
      await broker.close();
    },
  };
}
