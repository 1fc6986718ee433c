import { X509Certificate, createHash, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { lstatSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { isIP, type Socket } from 'node:net';
import { join } from 'node:path';
import { Agent } from 'node:https';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { inputError } from '../errors.js';
import * as x509 from '../pki/x509.js';
import { readPrivateFile, writePrivateFile } from './files.js';
import { problemBody } from './problem.js';

/**
 * TLS for the broker without a CA: a self-signed ECDSA P-256 certificate made on first start,
 * kept (0600, like every key under the broker home) and reused, so its SHA-256 fingerprint is
 * stable and clients pin it (`coffer fetch --pin`, `curl --pinnedpubkey`, or its PEM as the CA).
 * And mutual TLS for the admin API: with a client CA, admin routes need a client certificate
 * chaining to it on top of the bearer token; KBS routes are unchanged (guests have no client
 * certificate: their credential is the evidence).
 */

export const SELF_SIGNED_DAYS = 397;
/** Renewed when fewer days than this remain: the fingerprint changes then, and the start says so. */
const RENEW_DAYS = 30;

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** SHA-256 of the certificate DER, colon-separated upper-case hex (what `openssl x509 -fingerprint -sha256` prints). */
  fingerprint: string;
  /** `sha256//<base64 SHA-256 of the SubjectPublicKeyInfo>`: the pin curl's --pinnedpubkey takes. */
  spkiPin: string;
  certFile: string;
  keyFile: string;
  created: boolean;
}

export function tlsFiles(home: string): { certFile: string; keyFile: string } {
  return { certFile: join(home, 'tls-cert.pem'), keyFile: join(home, 'tls-key.pem') };
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

const WILDCARD = new Set(['0.0.0.0', '::', '']);

/** The names the certificate must carry for a listen host: it, plus loopback; the machine's name for a wildcard bind. */
export function sansFor(host: string): { dns: string[]; ip: string[] } {
  const dns = new Set<string>(['localhost']);
  const ip = new Set<string>(['127.0.0.1', '::1']);
  if (WILDCARD.has(host)) dns.add(hostname());
  else if (isIP(host)) ip.add(host);
  else dns.add(host.toLowerCase());
  return { dns: [...dns], ip: [...ip] };
}

function covers(cert: X509Certificate, host: string): boolean {
  if (WILDCARD.has(host)) return true;
  return isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
}

/**
 * Loads the broker's self-signed certificate, or makes one (ECDSA P-256, SHA-256, serverAuth,
 * SANs from `sansFor`) when there is none, it has (nearly) expired, or it does not name `host`.
 */
export async function loadOrCreateSelfSigned(home: string, host: string, now: Date = new Date()): Promise<TlsMaterial> {
  const { certFile, keyFile } = tlsFiles(home);
  if (exists(certFile) && exists(keyFile)) {
    const cert = readPrivateFile(certFile, 'the TLS certificate', 'KEY_INSECURE_FILE');
    const key = readPrivateFile(keyFile, 'the TLS key', 'KEY_INSECURE_FILE');
    let x: X509Certificate;
    try {
      x = new X509Certificate(cert);
      if (!x.checkPrivateKey(createPrivateKey(key))) throw new Error('key mismatch');
    } catch {
      throw inputError('TLS_BAD_SELF_SIGNED', `${certFile} and ${keyFile} are not a certificate and its key: remove both to have new ones made`);
    }
    const fresh = new Date(x.validTo).getTime() - now.getTime() > RENEW_DAYS * 86_400_000;
    if (fresh && covers(x, host)) return { cert, key, fingerprint: x.fingerprint256, spkiPin: spkiPin(x), certFile, keyFile, created: false };
    unlinkSync(certFile);
    unlinkSync(keyFile);
  } else {
    // Half a pair (a start killed between the two writes below, or one file removed to force a
    // renewal) is useless alone, and the exclusive create below would fail on it.
    for (const f of [certFile, keyFile]) if (exists(f)) unlinkSync(f);
  }
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as unknown as x509.X509CertificateCreateSelfSignedParams['keys'];
  const sans = sansFor(host);
  const serial = randomBytes(16);
  serial[0] = ((serial[0] as number) & 0x7f) | 0x01;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: 'CN=coffer broker',
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + SELF_SIGNED_DAYS * 86_400_000),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([...sans.dns.map((value) => ({ type: 'dns' as const, value })), ...sans.ip.map((value) => ({ type: 'ip' as const, value }))]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as unknown as webcrypto.CryptoKey));
  const keyPem = Buffer.from(`-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`);
  pkcs8.fill(0);
  const certPem = Buffer.from(cert.toString('pem').replace(/\r\n/g, '\n').replace(/\n?$/, '\n'));
  writePrivateFile(keyFile, keyPem);
  writePrivateFile(certFile, certPem);
  const made = new X509Certificate(certPem);
  return { cert: certPem, key: keyPem, fingerprint: made.fingerprint256, spkiPin: spkiPin(made), certFile, keyFile, created: true };
}

/** The public-key pin of a certificate (stays the same if the certificate is re-issued on the same key). */
export function spkiPin(cert: X509Certificate | Buffer | string): string {
  const x = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  return `sha256//${createHash('sha256').update(x.publicKey.export({ type: 'spki', format: 'der' })).digest('base64')}`;
}

/** SHA-256 fingerprint of a PEM or DER certificate, as `loadOrCreateSelfSigned` reports it. */
export function certificateFingerprint(cert: Buffer | string): string {
  return new X509Certificate(cert).fingerprint256;
}

/**
 * A pin as the broker prints it: the certificate's SHA-256 fingerprint (colons optional, any
 * case) or the public-key pin `sha256//<base64>`. Returned in the form compared.
 */
export function parsePin(pin: string): { kind: 'cert' | 'spki'; value: string } {
  const p = pin.trim();
  if (/^sha256\/\/[A-Za-z0-9+/]{43}=$/.test(p)) return { kind: 'spki', value: p };
  const hex = p.replace(/^sha256:/i, '').replace(/[:\s]/g, '');
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw inputError('USAGE', `--pin must be the SHA-256 certificate fingerprint the broker printed (AB:CD:…, 32 bytes) or a public-key pin sha256//…`);
  return { kind: 'cert', value: hex.toUpperCase().match(/../g)?.join(':') ?? '' };
}

/**
 * An HTTPS agent that trusts exactly one certificate (or public key): the connection is handed to
 * the request only after the handshake showed the pinned one, so nothing (no bearer token) is
 * sent to another server. The chain is not checked: the pin replaces it.
 */
export function pinnedAgent(pin: string): Agent {
  const want = parsePin(pin);
  const agent = new Agent({ keepAlive: false });
  const create = (opts: ConnectionOptions, done: (err: Error | null, s?: TLSSocket) => void): undefined => {
    const s = connect({ ...opts, rejectUnauthorized: false });
    let called = false;
    const once = (err: Error | null, sock?: TLSSocket) => {
      if (called) return;
      called = true;
      done(err, sock);
    };
    s.once('secureConnect', () => {
      const peer = s.getPeerCertificate();
      const got = want.kind === 'cert' ? peer.fingerprint256 : peer.raw ? spkiPin(peer.raw) : '';
      if (got === want.value) once(null, s);
      else {
        s.destroy();
        once(inputError('BROKER_PIN_MISMATCH', `the server's certificate is not the pinned one (it presented ${want.kind === 'cert' ? got : `public key ${got}`}): refusing to send anything`));
      }
    });
    s.once('error', (e) => once(e));
    return undefined;
  };
  (agent as unknown as { createConnection: typeof create }).createConnection = create;
  return agent;
}

/**
 * Admin routes (`prefixes`) answer only over a TLS connection whose client certificate chained to
 * the client CA (Node checked it during the handshake: `requestCert` without
 * `rejectUnauthorized`, so KBS clients without a certificate still connect).
 */
export function requireClientCertificate(app: FastifyInstance, prefixes: readonly string[]): void {
  const admin = (path: string) => prefixes.some((p) => path === p || path.startsWith(p.endsWith('/') ? p : `${p}/`));
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    // The router percent-decodes the path (`/%61dmin/...` is `/admin/...`): decide on the route it
    // matched, and on the raw path too for requests that match none.
    const route = (req.routeOptions as { url?: string } | undefined)?.url;
    if (!admin(req.url.split('?')[0] ?? '') && !(route !== undefined && admin(route))) return;
    const sock = req.raw.socket as Socket & Partial<TLSSocket>;
    if (sock.authorized === true) return;
    const why = typeof sock.getPeerCertificate === 'function' && Object.keys(sock.getPeerCertificate() ?? {}).length > 0 ? `the client certificate does not chain to the client CA (${String(sock.authorizationError ?? 'refused')})` : 'no client certificate was presented';
    req.log.info({ problem: 'unauthorized', code: 'ADMIN_CLIENT_CERT' }, 'request refused');
    const p = problemBody('unauthorized', 'ADMIN_CLIENT_CERT', `the admin API needs a TLS client certificate issued by the configured client CA: ${why}`);
    return reply.code(p.status).type('application/problem+json').send(p);
  });
}
