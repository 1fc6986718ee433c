/**
 * `npm run bench`: each hot path beside a reference measured in the same run, as a ratio.
 * Rounds alternate between the subject and its reference so that load from elsewhere on a
 * shared machine hits both alike; the median round is reported.
 */
import { verify as cryptoVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Certificate, parseCertificates } from '../src/pki/certificate.js';
import { verifySnpReport, SNP_SIGNED_LENGTH } from '../src/evidence/snp/index.js';
import { createHash } from 'node:crypto';
import { bootState, parseEventLog, replayEventLog } from '../src/evidence/eventlog/index.js';

const VECTORS = new URL('../../shared/vectors/', import.meta.url);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 300);

function opsPerSecond(fn: () => void): number {
  let n = 0;
  const start = process.hrtime.bigint();
  const limit = BigInt(ROUND_MS) * 1_000_000n;
  let elapsed = 0n;
  while (elapsed < limit) {
    for (let i = 0; i < 20; i++) fn();
    n += 20;
    elapsed = process.hrtime.bigint() - start;
  }
  return n / (Number(elapsed) / 1e9);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function compare(name: string, subject: () => void, refName: string, reference: () => void, target?: number): boolean {
  for (let i = 0; i < 50; i++) {
    subject();
    reference();
  }
  const ratios: number[] = [];
  const subj: number[] = [];
  const ref: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const a = opsPerSecond(subject);
    const b = opsPerSecond(reference);
    subj.push(a);
    ref.push(b);
    ratios.push(a / b);
  }
  const ratio = median(ratios);
  const ok = target === undefined || ratio >= target;
  console.log(
    `${name.padEnd(44)} ${median(subj).toFixed(0).padStart(7)}/s   ${refName.padEnd(34)} ${median(ref).toFixed(0).padStart(7)}/s   ratio ${ratio.toFixed(3)}${target !== undefined ? `  (target ≥ ${target}: ${ok ? 'met' : 'NOT MET'})` : ''}`,
  );
  return ok;
}

const report = readFileSync(new URL('amd-snp/go-sev-guest/attestation.bin', VECTORS));
const vcekDer = readFileSync(new URL('amd-snp/go-sev-guest/vcek.der', VECTORS));
const chainPem = readFileSync(new URL('amd-snp/amd-certs/ask_ark_milan.pem', VECTORS));
const at = new Date('2026-01-01T00:00:00Z');

const certs = [...parseCertificates(vcekDer), ...parseCertificates(chainPem)];
const vcek = certs[0] as Certificate;
const signed = report.subarray(0, SNP_SIGNED_LENGTH);
const sig = Buffer.alloc(96);
for (let i = 0; i < 48; i++) {
  sig[47 - i] = report[0x2a0 + i] as number;
  sig[95 - i] = report[0x2e8 + i] as number;
}
if (!cryptoVerify('sha384', signed, { key: vcek.publicKey, dsaEncoding: 'ieee-p1363' }, sig)) throw new Error('reference signature does not verify');

console.log(`coffer bench — node ${process.version}, ${ROUNDS} alternating rounds of ${ROUND_MS} ms, median shown\n`);
const results = [
  compare(
    'SNP verify (warm cert cache, parsed certs)',
    () => verifySnpReport(report, { at, certificates: certs }),
    'raw crypto.verify P-384 (KeyObject)',
    () => cryptoVerify('sha384', signed, { key: vcek.publicKey, dsaEncoding: 'ieee-p1363' }, sig),
    0.85,
  ),
  compare(
    'SNP verify (VCEK + chain as bytes each call)',
    () => verifySnpReport(report, { at, certificates: [Certificate.fromDer(vcekDer), ...parseCertificates(chainPem)] }),
    'raw crypto.verify P-384 (KeyObject)',
    () => cryptoVerify('sha384', signed, { key: vcek.publicKey, dsaEncoding: 'ieee-p1363' }, sig),
  ),
];

// Event logs: parse + replay against the raw cost of hashing every event's data once per bank
// (what any replaying verifier must at least do), in events per second.
function compareEvents(name: string, events: number, subject: () => void, refName: string, reference: () => void): void {
  for (let i = 0; i < 20; i++) {
    subject();
    reference();
  }
  const subj: number[] = [];
  const ref: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const a = opsPerSecond(subject) * events;
    const b = opsPerSecond(reference) * events;
    subj.push(a);
    ref.push(b);
    ratios.push(a / b);
  }
  console.log(`${name.padEnd(44)} ${median(subj).toFixed(0).padStart(7)} ev/s ${refName.padEnd(33)} ${median(ref).toFixed(0).padStart(7)} ev/s ratio ${median(ratios).toFixed(3)}`);
}

const rhel = readFileSync(new URL('tpm-eventlog/go-eventlog/rhel8-uefi.bin', VECTORS));
const rhelLog = parseEventLog(rhel);
const banks = rhelLog.algorithms.map((a) => a.name);
const datas = rhelLog.events.map((e) => e.data);
const hashEveryEvent = () => {
  for (const d of datas) for (const b of banks) createHash(b).update(d).digest();
};
console.log('');
compareEvents(
  `event log parse+replay (${rhelLog.events.length} ev, ${banks.length} banks)`,
  rhelLog.events.length,
  () => replayEventLog(parseEventLog(rhel)),
  'raw hash of each event, each bank',
  hashEveryEvent,
);
compareEvents('event log parse+replay+decode+boot state', rhelLog.events.length, () => bootState(parseEventLog(rhel)), 'raw hash of each event, each bank', hashEveryEvent);

process.exitCode = results.every(Boolean) ? 0 : 1;

// ---------------------------------------------------------------------------------------------
// Intel TDX: a v4 quote verified with its collateral already loaded (TCB info, QE identity, TCB
// signing chain, CRLs), beside the raw cost of the signatures every quote needs: two P-256
// verifies (quote, QE report) and the PCK chain check with its certificate signatures cached.
{
  const dcap = await import('../src/evidence/dcap/index.js');
  const pki = await import('../src/pki/index.js');
  const tdxDir = new URL('intel-tdx/', VECTORS);
  const read = (p: string) => readFileSync(new URL(p, tdxDir));
  const quote = read('trustee/tdx_quote_4.dat');
  const at = new Date('2023-07-01T01:00:00Z');
  const collateral = {
    tcbInfos: [dcap.parseTcbInfo(read('go-tdx-guest/collateral/tcbInfo_fmspc50806f000000_2023-06-18.json'))],
    qeIdentities: [dcap.parseQeIdentity(read('go-tdx-guest/collateral/qeIdentity_TD_QE_2023-06-08.json'))],
    certificates: [...parseCertificates(read('go-tdx-guest/collateral/tcb_signing_chain.pem')), ...parseCertificates(read('go-tdx-guest/collateral/pck_crl_issuer_chain.pem'))],
    crls: [pki.parseCrl(read('go-tdx-guest/collateral/pck_platform_crl_2023-06-08.der')), pki.parseCrl(read('go-tdx-guest/collateral/IntelSGXRootCA_crl_2023-04-03.der'))],
  };
  const q = dcap.parseDcapQuote(quote);
  const sd = q.signatureData;
  const certs = parseCertificates(sd.certification.data.toString('latin1'));
  const leaf = certs.find((c) => !c.isCa) as Certificate;
  const root = pki.loadPinnedRoot('intel-sgx-root-ca');
  const attKey = dcap.p256Key(sd.attestationKey);
  if (!attKey) throw new Error('attestation key');
  const signed = q.raw.subarray(0, q.signedLength);
  const floor = () => {
    cryptoVerify('sha256', signed, { key: attKey, dsaEncoding: 'ieee-p1363' }, sd.signature);
    cryptoVerify('sha256', sd.qeReport.raw, { key: leaf.publicKey, dsaEncoding: 'ieee-p1363' }, sd.qeReportSignature);
    pki.verifyChain(leaf, certs.filter((c) => c.isCa), [root], { at });
  };
  console.log('');
  compare('TDX quote verify (collateral cached)', () => void dcap.verifyDcapQuote(quote, { at, collateral }), '2× P-256 verify + cached PCK chain', floor);
}

// dm-verity: `coffer verity format` (worker threads, and one thread) beside `veritysetup
// format` on the same file in the same run, in MB/s of data; rounds alternate, median shown.
// BENCH_VERITY_MIB sets the file size (default 1024, as issue 7 asks).
{
  const { spawnSync } = await import('node:child_process');
  const { existsSync, mkdtempSync, openSync, writeSync, closeSync, rmSync } = await import('node:fs');
  const { randomBytes } = await import('node:crypto');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { formatVerityFile } = await import('../src/image/verity.js');
  const veritysetup = ['/usr/sbin/veritysetup', '/sbin/veritysetup', '/usr/bin/veritysetup'].find((p) => existsSync(p));
  if (!veritysetup) throw new Error('the dm-verity bench compares with veritysetup: apt-get install cryptsetup-bin');
  const mib = Number(process.env.BENCH_VERITY_MIB ?? 1024);
  const rounds = Number(process.env.BENCH_VERITY_ROUNDS ?? 3);
  const dir = mkdtempSync(join(tmpdir(), 'coffer-bench-verity-'));
  try {
    const data = join(dir, 'data');
    const fd = openSync(data, 'w');
    for (let i = 0; i < mib; i += 16) writeSync(fd, randomBytes(Math.min(16, mib - i) * 1048576));
    closeSync(fd);
    const salt = 'be7c0ffee0be7c0ffee0be7c0ffee0be7c0ffee0be7c0ffee0be7c0ffee0be7c';
    const uuid = '5e2d9b1c-7a4f-4e3d-8c2b-1a0f9e8d7c6b';
    const time = async (fn: () => unknown): Promise<number> => {
      const t = process.hrtime.bigint();
      await fn();
      return Number(process.hrtime.bigint() - t) / 1e9;
    };
    const mbps = (s: number) => (mib * 1048576) / 1e6 / s;
    const ours: number[] = [];
    const single: number[] = [];
    const ref: number[] = [];
    let same = true;
    for (let r = 0; r < rounds; r++) {
      let root = '';
      ours.push(mbps(await time(async () => (root = (await formatVerityFile(data, join(dir, 'h1'), { salt: Buffer.from(salt, 'hex'), uuid })).rootHash))));
      single.push(mbps(await time(() => formatVerityFile(data, join(dir, 'h0'), { salt: Buffer.from(salt, 'hex'), uuid, workers: 0 }))));
      let out = '';
      ref.push(mbps(await time(() => (out = spawnSync(veritysetup, ['format', data, join(dir, 'h2'), `--salt=${salt}`, `--uuid=${uuid}`], { encoding: 'utf8' }).stdout))));
      same &&= out.includes(root);
    }
    const ratio = median(ours) / median(ref);
    const met = ratio >= 1;
    console.log('');
    console.log(`dm-verity format ${mib} MiB, worker threads       ${median(ours).toFixed(0).padStart(7)} MB/s   veritysetup format                 ${median(ref).toFixed(0).padStart(7)} MB/s   ratio ${ratio.toFixed(3)}  (target ≥ 1: ${met ? 'met' : 'NOT MET'})`);
    console.log(`dm-verity format ${mib} MiB, one thread          ${median(single).toFixed(0).padStart(7)} MB/s   veritysetup format                 ${median(ref).toFixed(0).padStart(7)} MB/s   ratio ${(median(single) / median(ref)).toFixed(3)}`);
    if (!same) {
      console.log('dm-verity: root hashes differ from veritysetup');
      process.exitCode = 1;
    }
    if (!met) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Key broker: attest-and-release round trips with 1, 8, 32 clients on SQLite (and PostgreSQL when
// one answers on 127.0.0.1:5432) beside the round trip's cryptographic floor (bench/broker.ts).
{
  const { benchBroker } = await import('./broker.js');
  if (!(await benchBroker())) process.exitCode = 1;
}
