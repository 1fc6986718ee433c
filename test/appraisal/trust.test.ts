// The trust report and the threat assessment over the real vectors: the GCE COS 85 vTPM case,
// a GCE-style SNP + vTPM case described from real pieces, failing cases, and no policy at all.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  evaluate,
  formatTrustReport,
  gatherEvidence,
  parseEvidenceDescription,
  ReferenceStore,
  THREATS,
  trustLinks,
  trustReport,
  type Claims,
  type TrustLink,
  type TrustReport,
} from '../../src/appraisal/index.js';
import { AT, CASES, VECTORS, caseClaims, examplePolicy } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'coffer-trust-'));
after(() => rmSync(work, { recursive: true, force: true }));

const GCE = join(VECTORS, 'tpm-quote/gce-shielded-vm-cos85/gce-cos-85-nonce9009');

/**
 * A GCE SNP + vTPM machine described from real pieces: the SNP report is trustee's Milan report and
 * the vTPM quote the COS 85 Shielded VM's (no public vector has both from one GCE VM). Exactly the
 * situation the binding link is about: nothing in the evidence says they belong together.
 */
function combinedDescription(): string {
  const f = join(work, 'gce-snp-vtpm.json');
  const S = join(VECTORS, 'amd-snp');
  writeFileSync(
    f,
    JSON.stringify({
      description: 'GCE SNP + vTPM (described from real pieces)',
      at: '2025-06-01T00:00:00Z',
      nonce: '9009',
      evidence: [
        { kind: 'snp', report: join(S, 'trustee/test-report.bin'), vcek: join(S, 'trustee/test-vcek.der'), chain: join(S, 'amd-certs/ask_ark_milan.pem') },
        { kind: 'tpm', quote: join(GCE, 'quote_sha256.attest'), signature: join(GCE, 'quote_sha256.tpmt_signature'), ak: [join(GCE, 'ak_pub.tpmt'), join(GCE, 'ak_cert.der')], akRoot: join(VECTORS, 'gcp/ca/tpm_ek_root_1.cer'), akChain: join(VECTORS, 'gcp/ca/tpm_ek_intermediate_2.crt'), pcrs: join(GCE, 'extracted.json'), eventlog: join(GCE, 'event_log.bin') },
      ],
    }),
  );
  return f;
}

function gatherFile(f: string): { claims: Claims; nonce?: string } {
  return gatherEvidence(parseEvidenceDescription(readFileSync(f, 'utf8'), f), dirname(f), (p) => readFileSync(p), AT);
}

function appraise(g: { claims: Claims; nonce?: string }): TrustReport {
  return trustReport(evaluate(g.claims, examplePolicy(), new ReferenceStore(), { at: AT, ...(g.nonce !== undefined ? { nonce: g.nonce } : {}) }));
}

function link(r: TrustReport, id: string): TrustLink {
  const l = trustLinks(r).find((x) => x.id === id);
  assert.ok(l, `link ${id} is in the report (links: ${trustLinks(r).map((x) => x.id).join(', ')})`);
  return l;
}

function states(r: TrustReport): Record<string, string> {
  return Object.fromEntries(trustLinks(r).map((l) => [l.id, l.state]));
}

/** No link is VERIFIED without a passed check or rule behind it, and none with a failed one. */
function assertSound(r: TrustReport, what: string): void {
  for (const l of trustLinks(r)) {
    if (l.state === 'verified') {
      assert.ok(l.basis.some((b) => b.status === 'pass'), `${what}: ${l.id} is VERIFIED without a passed check`);
      assert.ok(!l.basis.some((b) => b.status === 'fail' || b.status === 'not-checked' || b.status === 'not-applicable'), `${what}: ${l.id} is VERIFIED with an open item`);
    }
    if (l.state === 'failed') assert.ok(l.basis.some((b) => b.status === 'fail'), `${what}: ${l.id} is FAILED without a failed item`);
    if (l.state === 'assumed') assert.ok(l.trusted && l.trusted.length > 0, `${what}: ${l.id} is ASSUMED without naming who is trusted`);
  }
  const n = trustLinks(r).length;
  assert.equal(r.counts.verified + r.counts.assumed + r.counts['not-checked'] + r.counts.failed, n);
}

test('GCE COS 85 vTPM: the vTPM and the firmware are ASSUMED with the reason, the quote chain VERIFIED', () => {
  const r = appraise(caseClaims('tpm-gce-cos85'));
  assertSound(r, 'tpm-gce-cos85');
  assert.equal(r.verdict, 'pass');
  assert.equal(r.provider, 'google');
  assert.deepEqual(r.chains.map((c) => c.id), ['tpm']);
  assert.deepEqual(
    trustLinks(r).map((l) => l.id),
    ['tpm.ak-root', 'tpm.ak-cert', 'tpm.vtpm', 'tpm.quote-signature', 'tpm.nonce', 'tpm.pcrs', 'tpm.eventlog', 'boot.secure-boot', 'boot.db', 'boot.applications', 'boot.cmdline', 'boot.verity', 'firmware'],
  );
  const s = states(r);
  for (const id of ['tpm.ak-cert', 'tpm.quote-signature', 'tpm.nonce', 'tpm.pcrs', 'tpm.eventlog', 'boot.secure-boot', 'boot.db', 'boot.verity']) assert.equal(s[id], 'verified', id);
  for (const id of ['tpm.ak-root', 'tpm.vtpm', 'firmware']) assert.equal(s[id], 'assumed', id);
  // The policy names no boot application or command line: they could have been checked, were not.
  assert.equal(s['boot.applications'], 'not-checked');
  assert.match(link(r, 'boot.applications').reason, /the policy sets no expectation for the boot applications \(3 measured\)/);

  const vtpm = link(r, 'tpm.vtpm');
  assert.equal(vtpm.title, 'vTPM operated by Google');
  assert.match(vtpm.trusted ?? '', /vTPM operated by the CSP's hypervisor \(Google's hypervisor\)/);
  assert.match(vtpm.reason, /no hardware TEE report was appraised/);
  const fw = link(r, 'firmware');
  assert.equal(fw.trusted, 'Google-provided UEFI firmware, not reproducible from source');
  assert.match(fw.reason, /measured into PCR 0, but that was not compared with signed reference values/);
  const root = link(r, 'tpm.ak-root');
  assert.match(root.trusted ?? '', /^Google EK\/AK CA: tpm_ek_v1_cloud_host_root-signer-0-2018-04-06.*supplied by the caller \(Coffer pins no TPM root\)$/);

  // What checked each VERIFIED link is named.
  assert.deepEqual(link(r, 'tpm.quote-signature').basis.map((b) => b.name), ['tpm.signature', 'tpm.format', 'tpm.qualified-signer']);
  assert.deepEqual(link(r, 'tpm.nonce').basis.filter((b) => b.status === 'pass').map((b) => b.name), ['tpm.nonce']);
  assert.deepEqual(link(r, 'boot.verity').basis.map((b) => `${b.kind} ${b.name} ${b.status}`), ['rule kernel.verity pass']);
});

test('GCE SNP + vTPM: SNP signature chain VERIFIED; binding, vTPM and firmware ASSUMED, each saying why', () => {
  const r = appraise(gatherFile(combinedDescription()));
  assertSound(r, 'gce-snp-vtpm');
  assert.equal(r.verdict, 'pass', JSON.stringify(r.rules.filter((x) => x.status === 'fail')));
  assert.deepEqual(r.chains.map((c) => c.id), ['sev-snp', 'binding', 'tpm']);
  const s = states(r);
  assert.equal(s['snp.root'], 'assumed');
  for (const id of ['snp.ask', 'snp.vcek', 'snp.signature', 'snp.tcb-binding', 'snp.tcb-minimum', 'snp.measurement', 'snp.guest-policy']) assert.equal(s[id], 'verified', id);
  assert.equal(s['snp.revocation'], 'not-checked');
  assert.match(link(r, 'snp.revocation').reason, /no CRL was supplied/);
  assert.match(link(r, 'snp.root').trusted ?? '', /^AMD root key ARK-Milan \(pinned by SHA-256 [0-9a-f]{64}\)$/);
  assert.deepEqual(link(r, 'snp.ask').basis.map((b) => b.description), ['SEV-Milan is signed by ARK-Milan (pinned)', 'chain ends at trusted root ARK-Milan (pinned)']);
  assert.ok(link(r, 'snp.vcek').basis.some((b) => b.description === 'SEV-VCEK is signed by SEV-Milan'));
  assert.deepEqual(link(r, 'snp.signature').basis.map((b) => b.name), ['snp.signature', 'snp.format']);

  const binding = link(r, 'binding.vtpm-snp');
  assert.equal(binding.state, 'assumed');
  assert.match(binding.reason, /on GCE the vTPM is emulated by Google's hypervisor outside the SNP guest/);
  assert.match(binding.reason, /nothing in the SNP report \(REPORT_DATA, HOST_DATA\) names the AK/);
  const vtpm = link(r, 'tpm.vtpm');
  assert.equal(vtpm.state, 'assumed');
  assert.match(vtpm.trusted ?? '', /vTPM operated by the CSP's hypervisor \(Google's hypervisor\), not bound to the SNP report/);
  // The measurement the policy lists pins the firmware, but says nothing of where it came from.
  const fw = link(r, 'firmware');
  assert.equal(fw.state, 'assumed');
  assert.equal(fw.trusted, 'Google-provided UEFI firmware, not reproducible from source');
  assert.match(fw.reason, /rule measurement pinned the firmware to a value the policy lists, but no signed reference values/);
  // The firmware sits in the SNP chain, right after the launch measurement that covers it.
  const snpIds = r.chains[0]?.links.map((l) => l.id) ?? [];
  assert.equal(snpIds[snpIds.indexOf('snp.measurement') + 1], 'firmware');
  assert.ok(!r.chains[2]?.links.some((l) => l.id === 'firmware'));

  const vt = r.threats.find((t) => t.id === 'csp-vtpm');
  assert.equal(vt?.status, 'unmitigated');
  assert.equal(vt?.residual, 12);
  assert.deepEqual(vt?.missing.map((m) => `${m.link}:${m.state}`), ['binding.vtpm-snp:assumed', 'tpm.vtpm:assumed']);
  const host = r.threats.find((t) => t.id === 'malicious-host');
  assert.equal(host?.status, 'mitigated');
  assert.equal(host?.residual, 4);
  assert.deepEqual(host?.mitigations.map((m) => m.link), ['snp.signature', 'snp.vcek', 'snp.ask', 'snp.guest-policy', 'snp.measurement', 'snp.tcb-minimum']);
  assert.ok(host?.mitigations.find((m) => m.link === 'snp.guest-policy')?.by.includes('rule debug'));
});

test('a failed rule marks its link FAILED, naming the rule with expected and found', () => {
  const r = appraise(caseClaims('snp-go-sev-guest-debug'));
  assertSound(r, 'debug');
  const gp = link(r, 'snp.guest-policy');
  assert.equal(gp.state, 'failed');
  assert.match(gp.reason, /^rule debug: the guest policy allows debugging by the host.*\(expected forbidden, found DEBUG=1\)$/);
  assert.equal(link(r, 'snp.tcb-minimum').state, 'failed');
  assert.match(link(r, 'snp.tcb-minimum').reason, /^rule tcb\.minimum: .*reported snp 5 < 8/);
  assert.equal(link(r, 'snp.measurement').state, 'failed');
  // The chain itself verified.
  assert.equal(link(r, 'snp.signature').state, 'verified');
  // A failed launch measurement does not say the firmware is the culprit.
  assert.equal(link(r, 'firmware').state, 'assumed');
  const debug = r.threats.find((t) => t.id === 'debug-guest');
  assert.equal(debug?.status, 'failed');
  assert.equal(debug?.residual, debug?.inherent);
  assert.match(debug?.text ?? '', /^FAILED: Guest policy \(debug, migration\)/);
});

test('failed verification: the failing check is FAILED, the links after it NOT CHECKED, nothing VERIFIED on top of it', () => {
  const nonce = appraise(caseClaims('tpm-gce-cos85-wrong-nonce'));
  assertSound(nonce, 'wrong nonce');
  assert.equal(link(nonce, 'tpm.nonce').state, 'failed');
  assert.match(link(nonce, 'tpm.nonce').reason, /^check tpm\.nonce TPM_NONCE_MISMATCH: .*\(expected 9010, found 9009\)$/);
  assert.equal(link(nonce, 'tpm.pcrs').state, 'not-checked');
  assert.match(link(nonce, 'tpm.pcrs').reason, /verification stopped at tpm\.nonce \(TPM_NONCE_MISMATCH\)/);
  assert.equal(link(nonce, 'tpm.eventlog').state, 'not-checked');
  assert.equal(nonce.provider, 'google', 'the provider is still known from the chain checks');
  assert.equal(nonce.threats.find((t) => t.id === 'replayed-evidence')?.status, 'failed');

  const chain = appraise(caseClaims('snp-milan-report-genoa-chain'));
  assertSound(chain, 'genoa chain');
  assert.equal(link(chain, 'snp.vcek').state, 'failed');
  assert.match(link(chain, 'snp.vcek').reason, /^check snp\.product SNP_WRONG_PRODUCT: SEV-VCEK is issued by SEV-Milan, but the supplied AMD signing key is SEV-Genoa/);
  // The signature check passed, but over a key whose chain failed: not VERIFIED.
  assert.equal(link(chain, 'snp.signature').state, 'not-checked');
  assert.match(link(chain, 'snp.signature').reason, /rests on "VCEK\/VLEK certificate under the ASK", which is FAILED/);
  assert.equal(link(chain, 'snp.ask').state, 'not-checked');
  assert.equal(chain.counts.verified, 0);
  assert.equal(chain.threats.find((t) => t.id === 'forged-evidence')?.status, 'failed');
});

test('without a policy: verification links as checked, every policy link NOT CHECKED, claims shown', () => {
  const g = gatherFile(combinedDescription());
  const r = trustReport({ claims: g.claims, at: AT });
  assertSound(r, 'no policy');
  assert.equal(r.policy, undefined);
  assert.equal(r.verdict, undefined);
  assert.deepEqual(r.rules, []);
  const s = states(r);
  for (const id of ['snp.ask', 'snp.vcek', 'snp.signature', 'snp.tcb-binding', 'tpm.ak-cert', 'tpm.quote-signature', 'tpm.nonce', 'tpm.pcrs', 'tpm.eventlog']) assert.equal(s[id], 'verified', id);
  for (const id of ['snp.tcb-minimum', 'snp.measurement', 'snp.guest-policy', 'snp.report-data', 'snp.workload', 'boot.secure-boot', 'boot.db', 'boot.applications', 'boot.cmdline', 'boot.verity']) {
    assert.equal(s[id], 'not-checked', id);
    assert.match(link(r, id).reason, /^no policy was given/, id);
  }
  assert.match(link(r, 'snp.guest-policy').reason, /DEBUG=0, MIGRATE_MA=0/);
  const claims = Object.fromEntries(r.claims.map((c) => [c.name, c.value]));
  assert.equal(claims['launch measurement (SEV-SNP)'], 'a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c');
  assert.equal(claims['Secure Boot'], 'on');
  assert.equal(claims['TPM nonce (extraData)'], '9009 (checked)');
  assert.equal(r.at, AT.toISOString());
});

test('every case of the folder: sound links; threats complete, weighted and sorted', () => {
  const ids = new Set<string>();
  for (const name of readdirSync(CASES)) {
    const r = appraise(caseClaims(name));
    assertSound(r, name);
    for (const l of trustLinks(r)) ids.add(l.id);
    assert.deepEqual(r.threats.map((t) => t.id).sort(), THREATS.map((t) => t.id).sort(), name);
    for (let i = 1; i < r.threats.length; i++) assert.ok((r.threats[i - 1]?.residual ?? 0) >= (r.threats[i]?.residual ?? 0), `${name}: threats sorted`);
    for (const t of r.threats) {
      assert.equal(t.inherent, t.likelihood * t.impact);
      assert.ok(t.residual >= 0 && t.residual <= t.inherent, `${name}: ${t.id} residual within 0..inherent`);
      if (t.status === 'mitigated') assert.equal(t.missing.length, 0);
    }
    assert.equal(r.threats.find((t) => t.id === 'side-channels')?.status, 'out-of-scope');
    assert.equal(r.threats.find((t) => t.id === 'broker-admin')?.status, 'outside-evidence');
  }
  for (const g of [gatherFile(combinedDescription())]) for (const l of trustLinks(appraise(g))) ids.add(l.id);
  for (const t of THREATS) {
    for (const w of [t.likelihood, t.impact]) assert.ok(Number.isInteger(w) && w >= 1 && w <= 5, t.id);
    assert.ok(t.rationale.length > 0 && t.attack.length > 0, t.id);
    for (const id of t.mitigatedBy) assert.ok(ids.has(id), `threat ${t.id}: link ${id} is one a report produces`);
  }
});

test('text: one aligned line per link with its state as a word', () => {
  const r = appraise(caseClaims('tpm-gce-cos85'));
  const text = formatTrustReport(r);
  const rows = text.split('\n').filter((l) => /^ {2}(VERIFIED|ASSUMED|NOT CHECKED|FAILED) /.test(l));
  assert.equal(rows.length, trustLinks(r).length);
  const col = rows.map((l) => l.indexOf(l.trimStart().replace(/^(VERIFIED|ASSUMED|NOT CHECKED|FAILED)\s+/, '')));
  assert.equal(new Set(col).size, 1, 'link titles start in one column');
  assert.match(text, /^ {2}ASSUMED {6}vTPM operated by Google +trusted: vTPM operated by the CSP's hypervisor/m);
  assert.match(text, /^ {2}VERIFIED {5}Quote signature +by tpm\.signature, tpm\.format, tpm\.qualified-signer$/m);
  assert.match(text, /^Links: 8 VERIFIED, 3 ASSUMED, 2 NOT CHECKED, 0 FAILED$/m);
  assert.match(text, /^ {4}20 {2}4×5 {4}Malicious hypervisor or CSP administrator {2}unmitigated$/m);
});

test('docs/threat-model.md lists every threat with the weights the code uses', () => {
  const doc = readFileSync(join(CASES, '../../../docs/threat-model.md'), 'utf8');
  for (const t of THREATS) {
    const row = new RegExp(`^\\| \`${t.id}\` \\| ${t.title} \\| ${t.likelihood} \\| ${t.impact} \\| ${t.likelihood * t.impact} \\| (.*) \\|$`, 'm').exec(doc);
    assert.ok(row, `threat ${t.id} has its row in the catalogue table`);
    for (const l of t.mitigatedBy) assert.ok(row[1]?.includes(`\`${l}\``), `${t.id}: ${l} is named in the table`);
  }
});

test('review hole B: authorities are claimed for the boot as used, in no authenticated order, never per boot application', () => {
  const g = caseClaims('tpm-gce-cos85');
  const boot = g.claims.boot;
  assert.ok(boot);
  // Log order does not say which key verified which application (PCR 7 and PCR 4 are extended independently).
  for (const a of boot.bootApplications) assert.deepEqual(a.authorities, []);
  assert.deepEqual(boot.authorities?.map((a) => [a.variable, a.subject, a.sha256]), Array(3).fill(['db', 'UEFI DB Key v10', 'a7b8c851deb2acba7c7d0e6ec091c93440f942c65d776fdcb58016f8fd1674b0']));
  const r = appraise(g);
  const claims = Object.fromEntries(r.claims.map((c) => [c.name, c.value]));
  assert.equal(claims['authorities used (order not authenticated)'], 'db: "UEFI DB Key v10" (×3)');
  assert.doesNotMatch(claims['boot applications'] ?? '', /UEFI DB Key/);
  assert.match(formatTrustReport(r), /^ {2}authorities used \(order not authenticated\) +db: "UEFI DB Key v10" \(×3\)$/m);
});
