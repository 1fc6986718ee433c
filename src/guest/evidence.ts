import { verifyError } from '../errors.js';
import { parseCertTable } from '../evidence/snp/input.js';
import { describeAuxblob, tsmReport, type TsmOptions } from './configfs-tsm.js';
import { silentLog, type AgentLog } from './log.js';

/**
 * Where the agent's evidence comes from. A source knows which KBS `tee` it speaks for (sent in
 * /auth before any report exists) and turns the 64 bytes of report data that bind the broker's
 * nonce and the agent's ephemeral key into the `tee-evidence` of /attest.
 */
export interface EvidenceSource {
  /** The KBS protocol's tee name: `snp`, `tdx`, `tpm`. */
  readonly tee: string;
  /** For the operator log. */
  readonly name: string;
  collect(reportData: Buffer): Promise<unknown>;
}

/** SEV-SNP through configfs-tsm: {outblob, auxblob} as the broker's SNP verifier accepts them. */
export function configfsTsmSource(o: Omit<TsmOptions, 'expectProvider'> & { log?: AgentLog } = {}): EvidenceSource {
  const log = o.log ?? silentLog;
  return {
    tee: 'snp',
    name: 'configfs-tsm',
    async collect(reportData: Buffer): Promise<unknown> {
      const r = await tsmReport(reportData, { ...o, expectProvider: 'sev_guest' });
      // The broker does not fetch certificates from AMD: the guest must send the VCEK (or VLEK).
      const roles = r.auxblob.length > 0 ? parseCertTable(r.auxblob).map((e) => e.role) : [];
      if (!roles.includes('VCEK') && !roles.includes('VLEK')) {
        throw verifyError('TSM_NO_VCEK', `the SEV-SNP report came without a VCEK or VLEK in auxblob (${describeAuxblob(r.auxblob)}): the host must supply the certificate table (SNP extended guest request)`);
      }
      log.info('evidence', `SEV-SNP report from configfs-tsm (${r.outblob.length} bytes, generation ${r.generation}); certificates: ${describeAuxblob(r.auxblob)}`);
      return { outblob: r.outblob.toString('base64'), auxblob: r.auxblob.toString('base64') };
    },
  };
}
