// The RCAR client's transport: HTTPS to a broker with a self-signed certificate, trusted by pin
// or as a CA, refused otherwise; plain http only to loopback.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BrokerError, configfsTsmSource, fetchResource, parsePin } from '../../src/guest/index.js';
import { policyFor, startTestBroker, type TestBroker } from '../broker/helpers.js';
import { MEASUREMENT_GOOD, TsmSim, randomKey, snpWorld } from './helpers.js';

const world = snpWorld();
const secret = randomKey();
let dir: string;
let sim: TsmSim;
let broker: TestBroker;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coffer-rcar-'));
  sim = new TsmSim(dir, world);
  await sim.start();
  broker = await startTestBroker(join(dir, 'broker'), { testOnlySnpRoots: world.roots, selfSignedTls: true });
  assert.match(broker.url, /^https:/);
  const admin = await broker.token('admin');
  // The test helper's http() has no TLS options: talk to the broker object for set-up.
  const who = await broker.running.broker.authorize(`Bearer ${admin}`, 'setup', ['admin']);
  await broker.running.broker.setPolicy(who, 'app', policyFor('app', MEASUREMENT_GOOD));
  await broker.running.broker.putSecret(who, 'app/key/one', Buffer.from(secret));
});

after(async () => {
  await sim?.stop();
  await broker?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const fetchWith = (tls: Parameters<typeof fetchResource>[0]['tls']) => fetchResource({ broker: broker.url, resource: 'app/key/one', evidence: configfsTsmSource({ root: sim.root }), ...(tls ? { tls } : {}), timeoutMs: 10_000 });

describe('RCAR client over TLS', () => {
  it('accepts the broker by its certificate fingerprint (as the broker prints it) and fetches the secret', async () => {
    const fp = broker.running.tls?.fingerprint;
    assert.ok(fp);
    assert.deepEqual(await fetchWith({ pinSha256: fp }), secret);
  });

  it('accepts the broker by a CA file (its self-signed certificate)', async () => {
    const certFile = broker.running.tls?.certFile as string;
    assert.deepEqual(await fetchWith({ ca: readFileSync(certFile) }), secret);
  });

  it('refuses another fingerprint before sending anything, and a certificate it has no anchor for', async () => {
    const wrong = 'ab'.repeat(32);
    const before = (await broker.running.broker.store.queryAudit({ action: 'kbs.auth' })).length;
    await assert.rejects(fetchWith({ pinSha256: wrong }), (e: unknown) => e instanceof BrokerError && e.code === 'AGENT_PIN_MISMATCH' && !e.transient);
    // No request reached the broker: the pin is checked right after the handshake.
    assert.equal((await broker.running.broker.store.queryAudit({ action: 'kbs.auth' })).length, before);
    await assert.rejects(fetchWith(undefined), (e: unknown) => e instanceof BrokerError && e.code === 'AGENT_TLS_REJECTED' && !e.transient);
  });

  it('a reply whose body is JSON but not an object (null, an array) is still a BrokerError: 5xx retried, 4xx final', async () => {
    let status = 503;
    let body = 'null';
    const server = createServer((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const get = () => fetchResource({ broker: url, resource: 'app/key/one', evidence: configfsTsmSource({ root: sim.root }), timeoutMs: 10_000 }).catch((e: unknown) => e);
    try {
      let e = await get();
      assert.ok(e instanceof BrokerError, String(e));
      assert.equal(e.code, 'BROKER_HTTP_503');
      assert.equal(e.transient, true);
      status = 403;
      body = '[1]';
      e = await get();
      assert.ok(e instanceof BrokerError, String(e));
      assert.equal(e.code, 'BROKER_HTTP_403');
      assert.equal(e.transient, false);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('parses pins with or without colons and refuses anything else', () => {
    assert.equal(parsePin('AB:'.repeat(31) + 'AB').toString('hex'), 'ab'.repeat(32));
    assert.throws(() => parsePin('abcd'), /AGENT_BAD_PIN|SHA-256/);
  });

  it('a problem reply becomes one line with the problem type; refusals are final, not retried', async () => {
    const r = await fetchResource({ broker: broker.url, resource: 'app/key/missing', evidence: configfsTsmSource({ root: sim.root }), tls: { pinSha256: broker.running.tls?.fingerprint as string } }).catch((e: unknown) => e);
    assert.ok(r instanceof BrokerError);
    assert.equal(r.transient, false);
    assert.equal(r.code, 'KBS_NO_RESOURCE');
    assert.match(r.message, /^release of app\/key\/missing refused by the broker \(HTTP 404\): .* \[urn:coffer:problem:resource-not-found\]$/);
    assert.doesNotMatch(r.message, /\n/);
  });
});
