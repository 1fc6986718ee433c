import { inputError, verifyError, CofferError } from '../../errors.js';
import { HASH_IDS, type TpmHash } from '../../evidence/tpm/constants.js';
import { parseTpmQuote, parseTpmSignature, parseTpmtPublic, qualifiedName } from '../../evidence/tpm/structures.js';
import { computePcrDigest, type PcrBanks } from '../../evidence/tpm/pcrs.js';
import { verifyTpmSignature } from '../../evidence/tpm/verify.js';
import { TPM_PT, TPM_RH, TPMA_NV } from './constants.js';
import { TpmClient, type LoadedObject, type PolicySession } from './client.js';
import { encodeSealedBlob, parseSealedBlob } from './blob.js';
import { policyPcrDigest, selectionFromInput, type PcrSelectionInput, type Selection } from './policy.js';
import { akTemplate, ekTemplate, MAX_SEALED_BYTES, sealedObjectTemplate, srkTemplate, type AkKind, type SrkKind } from './templates.js';
import { openTransport, type TpmTarget, type TransportOptions } from './transport.js';

export interface TpmOpenOptions extends TransportOptions {
  /** Send TPM2_Startup(CLEAR) first (a TPM that was already started is fine). Default false: firmware does it. */
  startup?: boolean;
}

export interface QuoteOptions {
  /** AK algorithm when no template is given: 'ecc' (ECDSA P-256, default) or 'rsa' (RSASSA-2048). */
  ak?: AkKind;
  /** A TPMT_PUBLIC AK template (e.g. GCE's, read from NV_INDEX.GCE_AK_TEMPLATE_ECC). */
  akTemplate?: Uint8Array;
  /** Hierarchy of the primary AK (default 'endorsement', as GCE's AK). */
  hierarchy?: 'endorsement' | 'owner';
  hierarchyAuth?: Uint8Array;
}

export interface TpmQuoteEvidence {
  /** TPMS_ATTEST exactly as signed. */
  attest: Buffer;
  /** TPMT_SIGNATURE. */
  signature: Buffer;
  /** The AK's TPMT_PUBLIC (its name is nameAlg || H(these bytes)). */
  akPublic: Buffer;
  akName: Buffer;
  /** H(hierarchy handle || AK name): what TPMS_ATTEST.qualifiedSigner holds for a primary AK. */
  akQualifiedName: Buffer;
  /** The selected PCR values; their digest equals the quote's pcrDigest (checked). */
  pcrs: PcrBanks;
  /** The qualifying data the quote carries (the nonce digest passed in). */
  nonce: Buffer;
}

export interface SealOptions {
  /** Seal to these PCR values instead of the current ones (for example values predicted for the next boot). */
  pcrValues?: PcrBanks;
  /** Storage key algorithm (default 'ecc'). */
  srk?: SrkKind;
  ownerAuth?: Uint8Array;
}

const HIERARCHIES = { endorsement: TPM_RH.ENDORSEMENT, owner: TPM_RH.OWNER } as const;
/** A few tries when a PCR changes between the quote and the read-back (another process extending). */
const QUOTE_ATTEMPTS = 3;
const PCR_READ_ATTEMPTS = 5;
/** NV chunk when the TPM does not report TPM_PT_NV_BUFFER_MAX. */
const DEFAULT_NV_CHUNK = 512;

/**
 * The guest-facing TPM: reads PCRs, quotes them with a primary AK, reads certificates from NV,
 * seals and unseals secrets under a PCR policy, extends PCRs. Every transient object and session
 * it loads is flushed before the call returns, whether it succeeded or not.
 */
export class Tpm {
  constructor(readonly client: TpmClient) {}

  async close(): Promise<void> {
    await this.client.transport.close();
  }

  private async flushQuietly(handle: number | undefined): Promise<void> {
    if (handle === undefined) return;
    await this.client.flushContext(handle).catch(() => undefined);
  }

  /** Current PCR values of the selection, read consistently (one pcrUpdateCounter across the reads). */
  async readPcrs(input: PcrSelectionInput): Promise<PcrBanks> {
    const sel = selectionFromInput(input);
    return this.readSelection(sel);
  }

  private async readSelection(sel: readonly Selection[]): Promise<PcrBanks> {
    for (let attempt = 0; attempt < PCR_READ_ATTEMPTS; attempt++) {
      const banks: PcrBanks = new Map();
      let remaining = sel.map((s) => ({ ...s, pcrs: [...s.pcrs] }));
      let counter: number | undefined;
      let consistent = true;
      while (remaining.some((s) => s.pcrs.length > 0)) {
        const ask = remaining.filter((s) => s.pcrs.length > 0);
        const r = await this.client.pcrReadOnce(ask);
        if (counter !== undefined && r.updateCounter !== counter) {
          consistent = false;
          break;
        }
        counter = r.updateCounter;
        let i = 0;
        let got = 0;
        for (const s of r.selection) {
          let m = banks.get(s.hashName);
          if (!m) banks.set(s.hashName, (m = new Map()));
          for (const p of s.pcrs) {
            m.set(p, r.digests[i++] as Buffer);
            got++;
          }
        }
        if (got === 0) throw inputError('TPM_PCR_BANK_MISSING', `the TPM returned none of the requested PCRs (${ask.map((s) => `${s.hashName}:${s.pcrs.join(',')}`).join(' ')}): is that bank allocated?`);
        remaining = remaining.map((s) => ({ ...s, pcrs: s.pcrs.filter((p) => !banks.get(s.hashName)?.has(p)) }));
      }
      if (consistent) return banks;
    }
    throw verifyError('TPM_PCRS_UNSTABLE', `the PCRs kept changing while being read (${PCR_READ_ATTEMPTS} attempts)`);
  }

  /** Extends one PCR in each bank given: `{ sha256: digest32, sha384: digest48 }`, or a bare SHA-256 digest. */
  async extendPcr(index: number, digests: Uint8Array | Partial<Record<TpmHash, Uint8Array>>): Promise<void> {
    if (!Number.isInteger(index) || index < 0 || index > 23) throw inputError('TPM_BAD_ARGUMENT', `PCR ${index} is not 0-23`);
    const map: Partial<Record<TpmHash, Uint8Array>> = digests instanceof Uint8Array ? { sha256: digests } : digests;
    const list = (Object.entries(map) as [TpmHash, Uint8Array | undefined][]).filter((e): e is [TpmHash, Uint8Array] => e[1] !== undefined);
    if (list.length === 0) throw inputError('TPM_BAD_ARGUMENT', 'extendPcr needs at least one digest');
    for (const [bank] of list) if (HASH_IDS[bank] === undefined) throw inputError('TPM_BAD_ARGUMENT', `"${bank}" is not a PCR bank`);
    // A TPM ignores digests for banks it has not allocated: without this read, extending only a
    // missing bank would succeed and measure nothing.
    await this.readSelection(list.map(([bank]) => ({ hash: HASH_IDS[bank], hashName: bank, pcrs: [index] })));
    await this.client.pcrExtend(index, list.map(([bank, d]) => ({ hash: HASH_IDS[bank], digest: d })));
  }

  /**
   * Quotes the selected PCRs with a primary AK, `nonceDigest` (1-64 bytes; for the broker, the
   * 64-byte report data of broker.expectedReportData) as qualifying data. The PCR values
   * are read right after the quote and must hash to its pcrDigest (retried if a PCR moved in
   * between); the signature is checked against the AK before anything is returned.
   */
  async quote(nonceDigest: Uint8Array, input: PcrSelectionInput, opts: QuoteOptions = {}): Promise<TpmQuoteEvidence> {
    const sel = selectionFromInput(input);
    if (nonceDigest.length === 0) throw inputError('TPM_BAD_ARGUMENT', 'the quote nonce is empty: a quote without fresh qualifying data proves nothing about when it was made');
    const hierarchy = HIERARCHIES[opts.hierarchy ?? 'endorsement'];
    if (hierarchy === undefined) throw inputError('TPM_BAD_ARGUMENT', `unknown hierarchy ${String(opts.hierarchy)}`);
    const template = opts.akTemplate ? Buffer.from(opts.akTemplate) : akTemplate(opts.ak ?? 'ecc');
    let ak: LoadedObject | undefined;
    try {
      ak = await this.client.createPrimary(hierarchy, template, opts.hierarchyAuth ? { hierarchyAuth: opts.hierarchyAuth } : {});
      const akPub = parseTpmtPublic(ak.public);
      if (!akPub.attributes.restricted || !akPub.attributes.sign || !akPub.attributes.fixedTPM) {
        throw inputError('TPM_BAD_AK', 'the AK template does not describe a restricted, fixedTPM signing key: its quotes would prove nothing');
      }
      for (let attempt = 0; attempt < QUOTE_ATTEMPTS; attempt++) {
        const { attest, signature } = await this.client.quote(ak.handle, nonceDigest, sel);
        const pcrs = await this.readSelection(sel);
        const q = parseTpmQuote(attest);
        const sig = parseTpmSignature(signature);
        if (!verifyTpmSignature(sig, attest, akPub.key)) throw verifyError('TPM_BAD_SIGNATURE', 'the TPM returned a quote whose signature does not verify with the AK it created');
        if (!q.extraData.equals(Buffer.from(nonceDigest))) throw verifyError('TPM_NONCE_MISMATCH', "the TPM's quote does not carry the nonce it was given");
        const digest = computePcrDigest(q.pcrSelection, pcrs, sig.hashName);
        if (digest.equals(q.pcrDigest)) {
          return { attest, signature, akPublic: ak.public, akName: ak.name, akQualifiedName: qualifiedName(hierarchy, ak.name), pcrs, nonce: Buffer.from(nonceDigest) };
        }
      }
      throw verifyError('TPM_PCRS_UNSTABLE', `the quoted PCRs changed before they could be read back (${QUOTE_ATTEMPTS} attempts)`);
    } finally {
      await this.flushQuietly(ak?.handle);
    }
  }

  /**
   * The AK quote() signs with (same options), without quoting: its TPMT_PUBLIC, name, qualified
   * name and public key as PEM (what an operator pins at the broker).
   */
  async attestationKey(opts: QuoteOptions = {}): Promise<{ public: Buffer; name: Buffer; qualifiedName: Buffer; pem: string }> {
    const hierarchy = HIERARCHIES[opts.hierarchy ?? 'endorsement'];
    if (hierarchy === undefined) throw inputError('TPM_BAD_ARGUMENT', `unknown hierarchy ${String(opts.hierarchy)}`);
    const ak = await this.client.createPrimary(hierarchy, opts.akTemplate ? Buffer.from(opts.akTemplate) : akTemplate(opts.ak ?? 'ecc'), opts.hierarchyAuth ? { hierarchyAuth: opts.hierarchyAuth } : {});
    await this.flushQuietly(ak.handle);
    const pub = parseTpmtPublic(ak.public);
    return { public: ak.public, name: ak.name, qualifiedName: qualifiedName(hierarchy, ak.name), pem: pub.key.export({ type: 'spki', format: 'pem' }).toString() };
  }

  /** The EK the TCG default template (L-1 RSA or L-2 ECC) derives: the key an EK certificate certifies. */
  async endorsementKey(kind: 'rsa' | 'ecc' = 'rsa', endorsementAuth?: Uint8Array): Promise<{ public: Buffer; name: Buffer }> {
    const ek = await this.client.createPrimary(TPM_RH.ENDORSEMENT, ekTemplate(kind), endorsementAuth ? { hierarchyAuth: endorsementAuth } : {});
    await this.flushQuietly(ek.handle);
    return { public: ek.public, name: ek.name };
  }

  /** All bytes of an NV index, read in chunks of TPM_PT_NV_BUFFER_MAX. */
  async readNv(index: number, opts: { ownerAuth?: Uint8Array; indexAuth?: Uint8Array } = {}): Promise<Buffer> {
    const pub = await this.client.nvReadPublic(index);
    const hex = `0x${(index >>> 0).toString(16).padStart(8, '0')}`;
    if (!(pub.attributes & TPMA_NV.WRITTEN)) throw inputError('TPM_NV_NOT_WRITTEN', `NV index ${hex} was never written`);
    if (((pub.attributes >>> 4) & 0xf) !== 0) throw inputError('TPM_NV_NOT_ORDINARY', `NV index ${hex} is a counter, bit field, extend or PIN index, not ordinary data`);
    let auth: number;
    let password: Uint8Array | undefined;
    if (pub.attributes & TPMA_NV.AUTHREAD) {
      auth = index;
      password = opts.indexAuth;
    } else if (pub.attributes & TPMA_NV.OWNERREAD) {
      auth = TPM_RH.OWNER;
      password = opts.ownerAuth;
    } else {
      throw inputError('TPM_NV_UNREADABLE', `NV index ${hex} can be read neither with its own auth nor with the owner's (attributes 0x${pub.attributes.toString(16)})`);
    }
    const max = (await this.client.getProperty(TPM_PT.NV_BUFFER_MAX).catch(() => undefined)) ?? DEFAULT_NV_CHUNK;
    const chunk = Math.max(1, Math.min(max, 1024));
    const parts: Buffer[] = [];
    for (let off = 0; off < pub.dataSize; off += chunk) {
      parts.push(await this.client.nvRead(auth, index, Math.min(chunk, pub.dataSize - off), off, password));
    }
    return Buffer.concat(parts);
  }

  /**
   * A DER certificate from NV (EK or AK certificate). Indices are often larger than the
   * certificate: the bytes after the DER SEQUENCE must be padding (all 0x00 or all 0xFF).
   */
  async readNvCertificate(index: number, opts: { ownerAuth?: Uint8Array } = {}): Promise<Buffer> {
    const data = await this.readNv(index, opts);
    const hex = `0x${(index >>> 0).toString(16).padStart(8, '0')}`;
    const len = derLength(data);
    if (len === undefined) throw inputError('TPM_NV_NOT_A_CERTIFICATE', `NV index ${hex} does not hold a DER certificate (no SEQUENCE header)`);
    if (len > data.length) throw inputError('TPM_NV_NOT_A_CERTIFICATE', `NV index ${hex}: the DER certificate claims ${len} bytes, the index holds ${data.length}`);
    const rest = data.subarray(len);
    if (rest.length > 0 && !rest.every((b) => b === 0) && !rest.every((b) => b === 0xff)) {
      throw inputError('TPM_NV_NOT_A_CERTIFICATE', `NV index ${hex}: ${rest.length} byte(s) after the certificate are not padding`);
    }
    return Buffer.from(data.subarray(0, len));
  }

  /**
   * Seals up to 128 bytes to the selected PCRs (their current values, or `pcrValues`): a
   * KEYEDHASH object under the owner-hierarchy SRK whose only authorisation is PolicyPCR.
   */
  async seal(data: Uint8Array, input: PcrSelectionInput, opts: SealOptions = {}): Promise<Buffer> {
    if (data.length === 0 || data.length > MAX_SEALED_BYTES) throw inputError('TPM_BAD_ARGUMENT', `a sealed secret must be 1-${MAX_SEALED_BYTES} bytes, not ${data.length}`);
    const sel = selectionFromInput(input);
    const values = opts.pcrValues ?? (await this.readSelection(sel));
    const policy = policyPcrDigest(sel, values);
    const srkKind = opts.srk ?? 'ecc';
    let srk: LoadedObject | undefined;
    try {
      srk = await this.client.createPrimary(TPM_RH.OWNER, srkTemplate(srkKind), opts.ownerAuth ? { hierarchyAuth: opts.ownerAuth } : {});
      const created = await this.client.create(srk.handle, sealedObjectTemplate(policy), { data });
      return encodeSealedBlob({ srk: srkKind, selection: sel, public: created.public, private: created.private });
    } finally {
      await this.flushQuietly(srk?.handle);
    }
  }

  /**
   * Unseals a blob from seal(): recreates the SRK, loads the object, satisfies PolicyPCR with the
   * current PCR values. The TPM refuses (TPM_RC_POLICY_FAIL) when any sealed PCR differs.
   */
  async unseal(blob: Uint8Array, opts: { ownerAuth?: Uint8Array } = {}): Promise<Buffer> {
    const b = parseSealedBlob(blob);
    let srk: LoadedObject | undefined;
    let obj: LoadedObject | undefined;
    let session: PolicySession | undefined;
    try {
      srk = await this.client.createPrimary(TPM_RH.OWNER, srkTemplate(b.srk), opts.ownerAuth ? { hierarchyAuth: opts.ownerAuth } : {});
      obj = await this.client.load(srk.handle, { public: b.public, private: b.private });
      session = await this.client.startAuthSession('policy', 'sha256');
      await this.client.policyPcr(session, b.selection);
      try {
        const out = await this.client.unseal(obj, session);
        session = undefined; // continueSession was clear: the TPM ended it
        return out;
      } catch (e) {
        if (e instanceof CofferError && e.code === 'TPM_RC_POLICY_FAIL') {
          throw new CofferError(e.code, `the TPM refused to unseal: the sealed PCRs (${b.selection.map((s) => `${s.hashName}:${s.pcrs.join(',')}`).join(' ')}) no longer hold the values the secret was sealed to (${e.message})`, { kind: 'verify', details: e.details ? { ...e.details } : {} });
        }
        throw e;
      }
    } finally {
      if (session) await this.flushQuietly(session.handle);
      await this.flushQuietly(obj?.handle);
      await this.flushQuietly(srk?.handle);
    }
  }

  /** The policy digest a PolicyPCR over the selection's current values gives in this TPM (for checks). */
  async policyDigestNow(input: PcrSelectionInput): Promise<Buffer> {
    const sel = selectionFromInput(input);
    const s = await this.client.startAuthSession('trial', 'sha256');
    try {
      await this.client.policyPcr(s, sel);
      return await this.client.policyGetDigest(s);
    } finally {
      await this.flushQuietly(s.handle);
    }
  }
}

/** Total length of a DER SEQUENCE from its header, or undefined when it is not one. */
function derLength(d: Buffer): number | undefined {
  if (d.length < 2 || d[0] !== 0x30) return undefined;
  const l0 = d[1] as number;
  if (l0 < 0x80) return 2 + l0;
  const n = l0 & 0x7f;
  if (n === 0 || n > 3 || d.length < 2 + n) return undefined;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + (d[2 + i] as number);
  return 2 + n + len;
}

/** Opens a TPM (device file or swtpm socket). Close it with `close()` when done. */
export async function openTpm(target: TpmTarget, opts: TpmOpenOptions = {}): Promise<Tpm> {
  const transport = openTransport(target, opts);
  const tpm = new Tpm(new TpmClient(transport));
  if (opts.startup) {
    try {
      await tpm.client.startup('clear', { alreadyStartedOk: true });
    } catch (e) {
      await transport.close().catch(() => undefined);
      throw e;
    }
  }
  return tpm;
}
