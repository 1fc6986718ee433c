import { toHex } from '../../bytes/hex.js';
import { attributeNames, type ObjectAttributes, type TpmPublic, type TpmQuote, type TpmSignature } from './structures.js';
import type { AttestationKey } from './ak.js';
import { describeKey } from './ak.js';
import { pcrBanksToJson, type PcrBanks } from './pcrs.js';

export interface TpmAkClaims {
  /** "rsa" or "ecc". */
  type: string;
  /** RSA-2048, ECC prime256v1, ... */
  key: string;
  forms: string[];
  /** TPM name (nameAlg || H(TPMT_PUBLIC)), when the public area is known. */
  name: string | null;
  nameAlg: string | null;
  attributes: (Omit<ObjectAttributes, 'raw'> & { raw: string; names: string[] }) | null;
  scheme: { alg: string; hash: string | null } | null;
  authPolicy: string | null;
  certificate: { subject: string; issuer: string; serial: string; notBefore: string; notAfter: string; sha256: string } | null;
}

export interface TpmQuoteClaims {
  type: 'quote';
  qualifiedSigner: string;
  extraData: string;
  clock: { clock: string; resetCount: number; restartCount: number; safe: boolean };
  firmwareVersion: string;
  pcrSelection: { bank: string; pcrs: number[] }[];
  pcrDigest: string;
  signature: { alg: string; hash: string };
  ak: TpmAkClaims | null;
  /** The selected PCR values the digest was verified against, when supplied. */
  pcrs: Record<string, Record<string, string>> | null;
}

function publicClaims(p: TpmPublic): Pick<TpmAkClaims, 'name' | 'nameAlg' | 'attributes' | 'scheme' | 'authPolicy'> {
  const { raw, ...flags } = p.attributes;
  return {
    name: toHex(p.name),
    nameAlg: p.nameAlgName,
    attributes: { raw: `0x${raw.toString(16).padStart(8, '0')}`, ...flags, names: attributeNames(p.attributes) },
    scheme: { alg: p.scheme.algName, hash: p.scheme.hashName ?? null },
    authPolicy: toHex(p.authPolicy),
  };
}

export function akClaims(ak: AttestationKey): TpmAkClaims {
  const c = ak.certificate;
  return {
    type: ak.key.asymmetricKeyType === 'ec' ? 'ecc' : 'rsa',
    key: describeKey(ak.key),
    forms: ak.forms,
    ...(ak.public ? publicClaims(ak.public) : { name: null, nameAlg: null, attributes: null, scheme: null, authPolicy: null }),
    certificate: c ? { subject: c.subject, issuer: c.issuer, serial: c.serial, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(), sha256: c.sha256 } : null,
  };
}

/** The quote as claims: binary values lowercase hex, 64-bit counters as decimal strings. */
export function tpmQuoteClaims(quote: TpmQuote, signature: TpmSignature, ak?: AttestationKey, pcrs?: PcrBanks): TpmQuoteClaims {
  return {
    type: 'quote',
    qualifiedSigner: toHex(quote.qualifiedSigner),
    extraData: toHex(quote.extraData),
    clock: { clock: quote.clockInfo.clock.toString(), resetCount: quote.clockInfo.resetCount, restartCount: quote.clockInfo.restartCount, safe: quote.clockInfo.safe },
    firmwareVersion: `0x${quote.firmwareVersion.toString(16).padStart(16, '0')}`,
    pcrSelection: quote.pcrSelection.map((s) => ({ bank: s.hashName, pcrs: [...s.pcrs] })),
    pcrDigest: toHex(quote.pcrDigest),
    signature: { alg: signature.alg, hash: signature.hashName },
    ak: ak ? akClaims(ak) : null,
    pcrs: pcrs ? pcrBanksToJson(pcrs) : null,
  };
}

/** A labelled, aligned rendering for a person. */
export function formatTpmQuote(c: TpmQuoteClaims): string {
  const rows: [string, string][] = [
    ['Type', 'TPM2_Quote (TPMS_ATTEST, TPM_ST_ATTEST_QUOTE)'],
    ['Qualified signer', c.qualifiedSigner],
    ['Extra data (nonce)', c.extraData || '(empty)'],
    ['Clock', `${c.clock.clock} ms, resets ${c.clock.resetCount}, restarts ${c.clock.restartCount}, ${c.clock.safe ? 'safe' : 'NOT safe'}`],
    ['Firmware version', c.firmwareVersion],
    ['PCR selection', c.pcrSelection.map((s) => `${s.bank}:${s.pcrs.join(',') || 'none'}`).join('  ')],
    ['PCR digest', c.pcrDigest],
    ['Signature', `${c.signature.alg.toUpperCase()} / ${c.signature.hash.toUpperCase()}`],
  ];
  if (c.ak) {
    rows.push(['AK', `${c.ak.key} (${c.ak.forms.join(' + ')})`]);
    if (c.ak.name) rows.push(['AK name', c.ak.name]);
    if (c.ak.attributes) rows.push(['AK attributes', `${c.ak.attributes.raw}  ${c.ak.attributes.names.join('|')}`]);
    if (c.ak.certificate) rows.push(['AK certificate', `issued by ${c.ak.certificate.issuer}, valid ${c.ak.certificate.notBefore} to ${c.ak.certificate.notAfter}`]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}
