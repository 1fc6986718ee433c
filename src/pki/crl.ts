import * as x509 from './x509.js';
import { CofferError, inputError } from '../errors.js';
import { normaliseSerial, type Certificate } from './certificate.js';
import { splitSignedDer, verifyWith, type SignedData } from './signature.js';

/** A parsed certificate revocation list. Its signature is checked against an issuer by `signedBy`. */
export class Crl {
  readonly der: Buffer;
  readonly issuer: string;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  readonly revoked: ReadonlySet<string>;
  private readonly signed: SignedData;

  constructor(der: Uint8Array) {
    this.der = Buffer.from(der);
    try {
      // @peculiar/x509 parses lazily: read every field here so a damaged CRL fails now.
      const crl = new x509.X509Crl(this.der);
      this.signed = splitSignedDer(this.der, 'CRL');
      // Critical CRL extensions (delta-CRL indicator, issuing distribution point) change what the
      // list covers; Coffer does not process them, so it refuses such a CRL rather than misread it.
      const critical = crl.extensions.filter((e) => e.critical).map((e) => e.type);
      if (critical.length > 0) throw inputError('PKI_BAD_CRL', `CRL has critical extension(s) Coffer does not process: ${critical.join(', ')}`);
      this.issuer = crl.issuer;
      this.thisUpdate = crl.thisUpdate;
      this.nextUpdate = crl.nextUpdate;
      this.revoked = new Set(crl.entries.map((e) => normaliseSerial(e.serialNumber)));
    } catch (e) {
      if (e instanceof CofferError && e.code !== 'PKI_BAD_DER') throw e;
      throw inputError('PKI_BAD_CRL', `not a valid X.509 CRL (${e instanceof Error ? e.message.split('\n')[0] : 'parse error'})`);
    }
  }

  /** Whether this CRL names `issuer` as its issuer and carries a valid signature by its key. */
  signedBy(issuer: Certificate): boolean {
    return issuer.subject === this.issuer && verifyWith(this.signed.algorithm, this.signed.tbs, this.signed.signature, issuer.publicKey);
  }

  isRevoked(cert: Certificate): boolean {
    return cert.issuer === this.issuer && this.revoked.has(cert.serial);
  }
}

const PEM_CRL = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/;

/** Reads a CRL in DER or PEM. */
export function parseCrl(data: Uint8Array | string): Crl {
  const text = typeof data === 'string' ? data : Buffer.from(data.subarray(0, 64)).toString('latin1').includes('-----BEGIN') ? Buffer.from(data).toString('latin1') : undefined;
  if (text !== undefined) {
    const m = PEM_CRL.exec(text);
    if (!m) throw inputError('PKI_BAD_CRL', 'the file holds no PEM "X509 CRL" block');
    return new Crl(Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64'));
  }
  return new Crl(data as Uint8Array);
}
