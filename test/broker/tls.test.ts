// TLS of a real broker: the generated self-signed certificate (ECDSA P-256, SANs, 0600, reused
// on restart, fingerprint as openssl computes it, a handshake `openssl s_client` verifies), real
// HTTPS clients that trust it as a CA or pin its fingerprint; mutual TLS on the admin API with a
// client CA made by openssl; plain HTTP on a non-loopback address refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { brokerPaths, loadOrCreateSelfSigned, startBroker } from '../../src/broker/index.js';
import type { CofferError } from '../../src/errors.js';
import { runCli } from '../helpers/cli.js';
import { fakeRoots, startTestBroker, type TestBroker } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'coffer-tls-'));
let tb: TestBroker;

function openssl(args: string[], input?: string): string {
  const r = spawnSync('openssl', args, { encoding: 'utf8', cwd: work, ...(input !== undefined ? { input } : {}) });
  if (r.error) throw new Error('openssl is missing: apt-get install openssl');
  assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** openssl without blocking the event loop (the broker answers in this same process). */
function opensslAsync(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn('openssl', args, { cwd: work, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, out }));
    c.stdin.end('Q\n');
  });
}

interface Got {
  status: number;
  body: string;
  fingerprint: string;
}

function get(url: string, o: RequestOptions & { bearer?: string; pin?: string } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const { bearer, pin, ...rest } = o;
    const req = request(
      url,
      {
        ...rest,
        headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
        // Pinning instead of a CA: no chain to check, the connection is dropped unless the certificate is the pinned one.
        ...(pin ? { rejectUnauthorized: false, agent: false } : {}),
      },
      (res) => {
        let body = '';
        const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, fingerprint }));
      },
    );
    if (pin) {
      req.on('socket', (sock) => {
        sock.on('secureConnect', () => {
          const fp = (sock as TLSSocket).getPeerCertificate().fingerprint256;
          if (fp !== pin) req.destroy(new Error(`certificate ${fp} is not the pinned one`));
        });
      });
    }
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  tb = await startTestBroker(mkdtempSync(join(tmpdir(), 'coffer-tls-broker-')), { selfSignedTls: true });
  // A client CA and certificates, made by openssl: the right client, and one from another CA.
  const ext = join(work, 'client.ext');
  writeFileSync(ext, 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  for (const ca of ['ca', 'rogue']) {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${ca} client CA`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}-client.key`, '-out', `${ca}-client.csr`, '-subj', '/CN=operator']);
    openssl(['x509', '-req', '-in', `${ca}-client.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${ca}-client.pem`, '-days', '2', '-extfile', ext]);
  }
});
after(async () => {
  await tb.cleanup();
  rmSync(work, { recursive: true, force: true });
});

test('self-signed certificate: ECDSA P-256, SANs, 0600 under the home, fingerprint as openssl computes it, reused on restart', async () => {
  assert.match(tb.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const info = tb.running.tls;
  assert.ok(info?.selfSigned && info.created);
  const certFile = join(tb.dir, 'tls-cert.pem');
  assert.equal(info.certFile, certFile);
  for (const f of ['tls-cert.pem', 'tls-key.pem']) assert.equal(statSync(join(tb.dir, f)).mode & 0o777, 0o600, f);
  const text = openssl(['x509', '-in', certFile, '-noout', '-text']);
  assert.match(text, /Public Key Algorithm: id-ecPublicKey/);
  assert.match(text, /NIST CURVE: P-256|ASN1 OID: prime256v1/);
  assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  assert.match(text, /DNS:localhost/);
  assert.match(text, /IP Address:127\.0\.0\.1/);
  assert.match(text, /TLS Web Server Authentication/);
  assert.match(text, /CA:FALSE/);
  const fp = openssl(['x509', '-in', certFile, '-noout', '-fingerprint', '-sha256']).trim().split('=')[1];
  assert.equal(info.fingerprint, fp);
  assert.match(readFileSync(join(tb.dir, 'tls-key.pem'), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);

  await tb.restart();
  assert.equal(tb.running.tls?.created, false);
  assert.equal(tb.running.tls?.fingerprint, fp, 'the same certificate after a restart');
});

test('self-signed renewal: half a pair left by a crash or removed by hand is replaced, not a crash; near expiry or another host renews; otherwise reused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-selfsigned-'));
  try {
    const now = new Date('2030-01-01T00:00:00Z');
    const first = await loadOrCreateSelfSigned(dir, '127.0.0.1', now);
    assert.ok(first.created);
    const again = await loadOrCreateSelfSigned(dir, '127.0.0.1', now);
    assert.equal(again.created, false);
    assert.equal(again.fingerprint, first.fingerprint);
    // Only the key left (killed between the two writes): a new pair, 0600.
    rmSync(join(dir, 'tls-cert.pem'));
    const noCert = await loadOrCreateSelfSigned(dir, '127.0.0.1', now);
    assert.ok(noCert.created);
    assert.notEqual(noCert.fingerprint, first.fingerprint);
    // Only the certificate left.
    rmSync(join(dir, 'tls-key.pem'));
    const noKey = await loadOrCreateSelfSigned(dir, '127.0.0.1', now);
    assert.ok(noKey.created);
    for (const f of ['tls-cert.pem', 'tls-key.pem']) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    // Renewed 30 days before it expires, and for a host it does not name; kept 31 days before.
    const kept = await loadOrCreateSelfSigned(dir, '127.0.0.1', new Date(now.getTime() + 366 * 86_400_000));
    assert.equal(kept.fingerprint, noKey.fingerprint);
    const renewed = await loadOrCreateSelfSigned(dir, '127.0.0.1', new Date(now.getTime() + 368 * 86_400_000));
    assert.ok(renewed.created);
    const other = await loadOrCreateSelfSigned(dir, 'broker.example', new Date(now.getTime() + 368 * 86_400_000));
    assert.ok(other.created);
    assert.match(new X509Certificate(other.cert).subjectAltName ?? '', /DNS:broker\.example/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('real TLS: openssl s_client verifies it against the certificate; node https trusts it as CA or by pin; a wrong pin or no trust fails', async () => {
  const certFile = join(tb.dir, 'tls-cert.pem');
  const port = new URL(tb.url).port;
  const ok = await opensslAsync(['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', certFile, '-verify_return_error', '-verify_hostname', 'localhost']);
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /Verify return code: 0 \(ok\)/);
  assert.match(ok.out, /Peer signature type: ECDSA/i);
  // Negative twin: verified against another CA, the handshake is refused.
  const bad = await opensslAsync(['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', join(work, 'ca.pem'), '-verify_return_error']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.out, /self[- ]signed certificate|verify error/i);

  const fp = tb.running.tls?.fingerprint as string;
  const viaCa = await get(`${tb.url}/healthz`, { ca: readFileSync(certFile) });
  assert.equal(viaCa.status, 200);
  assert.equal(viaCa.fingerprint, fp);
  const viaLocalhost = await get(`https://localhost:${port}/healthz`, { ca: readFileSync(certFile) });
  assert.equal(viaLocalhost.status, 200);
  assert.equal((await get(`${tb.url}/healthz`, { pin: fp })).status, 200);
  await assert.rejects(get(`${tb.url}/healthz`, { pin: fp.replace(/^../, fp.startsWith('00') ? '11' : '00') }), /not the pinned one/);
  await assert.rejects(get(`${tb.url}/healthz`), /self[- ]signed|certificate/i);
  // curl pins the public key it is told (and refuses another).
  const pin = tb.running.tls?.spkiPin as string;
  assert.match(pin, /^sha256\/\/[A-Za-z0-9+/]{43}=$/);
  const curl = (p: string) => new Promise<{ code: number | null; out: string }>((resolve, reject) => {
    const c = spawn('curl', ['-sS', '-k', '--pinnedpubkey', p, `${tb.url}/healthz`]);
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', () => reject(new Error('curl is missing: apt-get install curl')));
    c.on('close', (code) => resolve({ code, out }));
  });
  const pinned = await curl(pin);
  assert.equal(pinned.code, 0, pinned.out);
  assert.match(pinned.out, /"status":"ok"/);
  const wrong = await curl(`sha256//${Buffer.alloc(32, 1).toString('base64')}`);
  assert.equal(wrong.code, 90, wrong.out);
  // HSTS and the Secure cookie flag come with TLS.
  const auth = await new Promise<string[]>((resolve, reject) => {
    const req = request(`${tb.url}/kbs/v0/auth`, { method: 'POST', ca: readFileSync(certFile), headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve([String(res.headers['strict-transport-security']), String(res.headers['set-cookie'])]));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ version: '0.1.0', tee: 'snp' }));
  });
  assert.match(auth[0] as string, /max-age=/);
  assert.match(auth[1] as string, /; Secure/);
});

test('mTLS: admin routes and /metrics need a client certificate from the client CA as well as the token; KBS routes do not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-mtls-'));
  const running = await startBroker({ paths: brokerPaths({ home: dir }), host: '127.0.0.1', port: 0, selfSignedTls: true, clientCaFile: join(work, 'ca.pem'), logStream: tb.logs, testOnlySnpRoots: fakeRoots() });
  try {
    const ca = readFileSync(join(dir, 'tls-cert.pem'));
    const admin = readFileSync(running.paths.adminTokenFile, 'utf8').trim();
    const client = { ca, cert: readFileSync(join(work, 'ca-client.pem')), key: readFileSync(join(work, 'ca-client.key')) };
    const rogue = { ca, cert: readFileSync(join(work, 'rogue-client.pem')), key: readFileSync(join(work, 'rogue-client.key')) };

    const ok = await get(`${running.url}/admin/v0/secrets`, { ...client, bearer: admin });
    assert.equal(ok.status, 200, ok.body);
    const noCert = await get(`${running.url}/admin/v0/secrets`, { ca, bearer: admin });
    assert.equal(noCert.status, 401);
    assert.equal((JSON.parse(noCert.body) as { code: string }).code, 'ADMIN_CLIENT_CERT');
    assert.match(noCert.body, /no client certificate/);
    const wrongCa = await get(`${running.url}/admin/v0/secrets`, { ...rogue, bearer: admin });
    assert.equal(wrongCa.status, 401);
    assert.match(wrongCa.body, /does not chain to the client CA/);
    // The certificate adds to the token, it does not replace it.
    const noToken = await get(`${running.url}/admin/v0/secrets`, client);
    assert.equal(noToken.status, 401);
    assert.equal((JSON.parse(noToken.body) as { code: string }).code, 'ADMIN_NO_TOKEN');
    assert.equal((await get(`${running.url}/metrics`, { ca, bearer: admin })).status, 401);
    assert.equal((await get(`${running.url}/metrics`, { ...client, bearer: admin })).status, 200);
    // The router percent-decodes paths: an encoded admin path is still an admin route.
    for (const p of ['/%61dmin/v0/secrets', '/%6detrics', '/console/%61pi/session']) {
      const enc = await get(`${running.url}${p}`, { ca, bearer: admin });
      assert.equal(enc.status, 401, `${p}: ${enc.body}`);
      assert.equal((JSON.parse(enc.body) as { code: string }).code, 'ADMIN_CLIENT_CERT', p);
    }
    assert.equal((await get(`${running.url}/%61dmin/v0/secrets`, { ...client, bearer: admin })).status, 200, 'with the certificate it is served');
    // KBS and health without any client certificate.
    assert.equal((await get(`${running.url}/.well-known/jwks.json`, { ca })).status, 200);
    assert.equal((await get(`${running.url}/healthz`, { ca })).status, 200);
    const kbs = await opensslAsync(['s_client', '-connect', new URL(running.url).host, '-CAfile', join(dir, 'tls-cert.pem'), '-verify_return_error']);
    assert.match(kbs.out, /Acceptable client certificate CA names[\s\S]*ca client CA/, 'the server asks for a certificate from the client CA');
    assert.equal(new X509Certificate(ca).fingerprint256, running.tls?.fingerprint);
  } finally {
    await running.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('refused: plain HTTP on a non-loopback address, --client-ca without TLS, a client CA that is not a certificate', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-bind-'));
  try {
    const paths = brokerPaths({ home: dir });
    await assert.rejects(startBroker({ paths, host: '0.0.0.0', port: 0 }), (e: CofferError) => e.code === 'BROKER_INSECURE_BIND');
    await assert.rejects(startBroker({ paths, host: '10.1.2.3', port: 0 }), (e: CofferError) => e.code === 'BROKER_INSECURE_BIND');
    await assert.rejects(startBroker({ paths, host: '127.0.0.1', port: 0, clientCaFile: join(work, 'ca.pem') }), (e: CofferError) => e.code === 'USAGE');
    writeFileSync(join(work, 'not-a-cert.pem'), 'hello');
    await assert.rejects(startBroker({ paths, host: '127.0.0.1', port: 0, selfSignedTls: true, clientCaFile: join(work, 'not-a-cert.pem') }), (e: CofferError) => e.code === 'TLS_BAD_CLIENT_CA');
    // A given certificate that is missing, or a key that is not its own: input errors, not internal ones.
    for (const k of ['ca.key', 'rogue.key']) chmodSync(join(work, k), 0o600);
    await assert.rejects(startBroker({ paths, host: '127.0.0.1', port: 0, tls: { certFile: join(work, 'missing.pem'), keyFile: join(work, 'ca.key') } }), (e: CofferError) => e.code === 'TLS_BAD_CERT' && e.kind === 'input');
    await assert.rejects(startBroker({ paths, host: '127.0.0.1', port: 0, tls: { certFile: join(work, 'ca.pem'), keyFile: join(work, 'rogue.key') } }), (e: CofferError) => e.code === 'TLS_KEY_MISMATCH' && e.kind === 'input');
    await assert.rejects(startBroker({ paths, host: '127.0.0.1', port: 0, attestationPolicyFile: join(work, 'missing-policy.yaml') }), (e: CofferError) => e.code === 'POLICY_UNREADABLE' && e.kind === 'input');
    const given = await startBroker({ paths, host: '127.0.0.1', port: 0, tls: { certFile: join(work, 'ca.pem'), keyFile: join(work, 'ca.key') }, logStream: tb.logs });
    await given.close();
    // Through the CLI: one line, exit 2.
    const r = await runCli(['broker', 'serve', '--home', dir, '--listen', '0.0.0.0:0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /refusing to serve plain HTTP on 0\.0\.0\.0/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    // With the self-signed certificate a wildcard bind is allowed; the certificate names the machine.
    const running = await startBroker({ paths, host: '0.0.0.0', port: 0, selfSignedTls: true, logStream: tb.logs });
    try {
      assert.match(running.url, /^https:/);
      const x = new X509Certificate(readFileSync(join(dir, 'tls-cert.pem')));
      assert.match(x.subjectAltName ?? '', /DNS:localhost/);
    } finally {
      await running.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI client: --pin trusts exactly the printed fingerprint and sends nothing to another certificate; --client-cert for mTLS', async () => {
  const port = new URL(tb.url).port;
  const fp = tb.running.tls?.fingerprint as string;
  const tokenFile = tb.running.paths.adminTokenFile;
  const base = ['broker', 'secret', 'list', '--url', `https://127.0.0.1:${port}`, '--token-file', tokenFile];
  const ok = await runCli([...base, '--pin', fp]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((await runCli([...base, '--pin', fp.replace(/:/g, '').toLowerCase()])).code, 0, 'colons and case do not matter');
  assert.equal((await runCli([...base, '--pin', tb.running.tls?.spkiPin as string])).code, 0, 'the public-key pin works too');
  const listed = async () => (await tb.running.broker.store.queryAudit({ action: 'admin.secret.list', limit: 1000 })).length;
  const before = await listed();
  const wrongPin = `${fp.startsWith('00') ? '11' : '00'}${fp.slice(2)}`;
  const bad = await runCli([...base, '--pin', wrongPin]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /BROKER_PIN_MISMATCH|not the pinned one/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  assert.equal(await listed(), before, 'the request never reached the broker');
  // Without --pin or --ca the self-signed certificate is not trusted.
  const untrusted = await runCli(base);
  assert.equal(untrusted.code, 2);
  assert.match(untrusted.stderr, /BROKER_UNREACHABLE.*(SELF_SIGNED|self[- ]signed)/i);
  assert.equal((await runCli([...base, '--pin', 'abc'])).code, 2);

  const dir = mkdtempSync(join(tmpdir(), 'coffer-mtls-cli-'));
  const running = await startBroker({ paths: brokerPaths({ home: dir }), host: '127.0.0.1', port: 0, selfSignedTls: true, clientCaFile: join(work, 'ca.pem'), logStream: tb.logs, testOnlySnpRoots: fakeRoots() });
  try {
    const args = ['broker', 'secret', 'list', '--url', running.url, '--token-file', running.paths.adminTokenFile, '--ca', join(dir, 'tls-cert.pem')];
    const without = await runCli(args);
    assert.equal(without.code, 1);
    assert.match(without.stderr, /ADMIN_CLIENT_CERT|TLS client certificate/);
    const withCert = await runCli([...args, '--client-cert', join(work, 'ca-client.pem'), '--client-key', join(work, 'ca-client.key')]);
    assert.equal(withCert.code, 0, withCert.stderr);
  } finally {
    await running.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
