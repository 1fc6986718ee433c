// Review hole A: an evidence description without a PCR file takes the PCR values from the event
// log, so the quote must select every PCR the log extends (and 0-7) in a bank the log carries;
// otherwise a quote over PCR 0 alone would vouch for a fabricated log. Synthetic quotes signed
// with a test key over the real GCE COS 85 event log.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ReferenceStore, evaluate, eventLogPcrs, gatherEvidence, parseEvidenceDescription, trustLinks, trustReport, type AppraisalResult } from '../../src/appraisal/index.js';
import { parseEventLog, replayEventLog } from '../../src/evidence/eventlog/index.js';
import { synthQuote } from '../evidence/tpm/vectors.js';
import { AT, VECTORS, examplePolicy } from './helpers.js';

const LOG = join(VECTORS, 'tpm-quote/gce-shielded-vm-cos85/gce-cos-85-nonce9009/event_log.bin');
const log = parseEventLog(readFileSync(LOG), { kind: 'tpm' });
const replayed = replayEventLog(log).pcrs.sha256 as Record<number, Buffer>;
const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });

const select = (pcrs: number[]) => {
  const bitmap = Buffer.alloc(3);
  for (const p of pcrs) bitmap[p >> 3] = (bitmap[p >> 3] as number) | (1 << (p & 7));
  return Buffer.concat([Buffer.from('00000001000b03', 'hex'), bitmap]);
};
const digestOf = (pcrs: number[]) => createHash('sha256').update(Buffer.concat(pcrs.map((p) => replayed[p] as Buffer))).digest();

/** Appraises a synthetic quote over `pcrs` (sha256) with the real log and no PCR file. */
function appraise(pcrs: number[]): AppraisalResult {
  const q = synthQuote(select(pcrs), digestOf(pcrs), key.privateKey, Buffer.from('9009', 'hex'));
  const files: Record<string, Buffer> = {
    '/m/quote.attest': q.attest,
    '/m/quote.sig': q.signature,
    '/m/ak.pem': Buffer.from(key.publicKey.export({ type: 'spki', format: 'pem' }) as string),
    '/m/event_log.bin': readFileSync(LOG),
  };
  const desc = parseEvidenceDescription('kind: tpm\nquote: quote.attest\nsignature: quote.sig\nak: ak.pem\nnonce: "9009"\neventlog: event_log.bin\n');
  const g = gatherEvidence(desc, '/m', (p) => files[p] ?? assert.fail(`unexpected read of ${p}`), AT);
  return evaluate(g.claims, examplePolicy(), new ReferenceStore(), { at: AT, ...(g.nonce !== undefined ? { nonce: g.nonce } : {}) });
}

describe('the quote must cover the event log when the PCRs come from the log', () => {
  test('the log extends sha256 PCRs 0-9 (and 0-7 are always needed)', () => {
    assert.deepEqual(eventLogPcrs(log).get('sha256'), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test('a quote over PCR 0 only → TPM_EVENTLOG_NOT_COVERED: verification fails, no boot state, the event-log link FAILED', () => {
    const r = appraise([0]);
    const v = r.verification[0];
    assert.equal(v?.verified, false);
    assert.equal(v?.error?.code, 'TPM_EVENTLOG_NOT_COVERED');
    const c = v?.checks.find((x) => x.name === 'eventlog.coverage');
    assert.equal(c?.ok, false);
    assert.match(c?.description ?? '', /selection \(sha256:0\) does not cover every PCR the log extends .*needed: .*sha256:0,1,2,3,4,5,6,7,8,9/);
    assert.equal(v?.checks.some((x) => x.name === 'eventlog.replay'), false);
    assert.equal(r.claims.boot, undefined);
    assert.equal(r.verdict, 'fail');
    const ev = r.rules.find((x) => x.id === 'evidence.verified');
    assert.equal(ev?.status, 'fail');
    assert.match(ev?.found ?? '', /TPM_EVENTLOG_NOT_COVERED/);
    // Nothing from the log counts: the boot rules have no boot state to speak to.
    assert.equal(r.rules.find((x) => x.id === 'secure-boot')?.status, 'not-applicable');
    const link = trustLinks(trustReport(r)).find((l) => l.id === 'tpm.eventlog');
    assert.equal(link?.state, 'failed');
    assert.match(link?.reason ?? '', /eventlog\.coverage TPM_EVENTLOG_NOT_COVERED/);
  });

  test('a quote over PCRs 0-8 (one short) is refused as well', () => {
    assert.equal(appraise([0, 1, 2, 3, 4, 5, 6, 7, 8]).verification[0]?.error?.code, 'TPM_EVENTLOG_NOT_COVERED');
  });

  test('a quote over PCRs 0-9 covers the log: verified, the boot state is there', () => {
    const r = appraise([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const v = r.verification[0];
    assert.equal(v?.verified, true, v?.error?.message);
    assert.equal(v?.checks.find((x) => x.name === 'eventlog.coverage')?.ok, true);
    assert.equal(v?.checks.find((x) => x.name === 'eventlog.replay')?.ok, true);
    assert.equal(r.claims.boot?.secureBoot, true);
    assert.equal(r.rules.find((x) => x.id === 'secure-boot')?.status, 'pass');
    assert.equal(trustLinks(trustReport(r)).find((l) => l.id === 'tpm.eventlog')?.state, 'verified');
  });
});
