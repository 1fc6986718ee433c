import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { inputError } from '../errors.js';
import { FAILURE_ACTIONS } from './failure.js';
import { checkResourcePath, parsePin } from './rcar-client.js';
import { parseTpmTarget } from './tpm/index.js';

/**
 * /etc/coffer/agent.yaml. Every section is strict: an unknown key is refused, not ignored (a
 * misspelt `failure:` must not silently fall back to something else). Example in docs/boot.md.
 */

const pin = z.string().refine((s) => {
  try {
    parsePin(s);
    return true;
  } catch {
    return false;
  }
}, 'must be a SHA-256 fingerprint (64 hex digits, colons allowed)');

const resource = z.string().refine((s) => {
  try {
    checkResourcePath(s);
    return true;
  } catch {
    return false;
  }
}, 'must be repository/type/tag');

/**
 * A TPM the agent may talk to: a device, a Unix socket, or TCP to this machine. TPM commands carry
 * the sealed and unsealed volume key without parameter encryption, so a TPM across the network
 * would put the key on the wire in clear.
 */
const tpmTarget = z.string().min(1).refine((s) => {
  try {
    const t = parseTpmTarget(s);
    return t.kind !== 'tcp' || /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|\[::1\]|localhost)$/i.test(t.host);
  } catch {
    return false;
  }
}, 'must be a TPM device (/dev/tpmrm0), a Unix socket (swtpm:path=/...) or swtpm on a loopback address: TPM commands carry the key in clear');

export const agentConfigSchema = z.strictObject({
  broker: z.strictObject({
    url: z.string().min(1),
    /** PEM file of the CA that issued the broker's certificate. */
    ca: z.string().min(1).optional(),
    /** SHA-256 of the broker certificate (instead of a CA). */
    pinSha256: pin.optional(),
    allowInsecureHttp: z.boolean().default(false),
    requestTimeoutSeconds: z.number().positive().max(300).default(10),
  }),
  evidence: z
    .strictObject({
      source: z.enum(['configfs-tsm', 'tpm']).default('configfs-tsm'),
      /** configfs-tsm report directory. */
      tsmRoot: z.string().min(1).default('/sys/kernel/config/tsm/report'),
      privlevel: z.number().int().min(0).max(3).optional(),
      /** TPM when source is tpm: /dev/tpmrm0, or swtpm:host=H,port=P. */
      tpmDevice: tpmTarget.default('/dev/tpmrm0'),
      /** SHA-256 PCRs quoted when source is tpm (default all 24: the broker's policy picks). */
      tpmPcrs: z.array(z.number().int().min(0).max(23)).min(1).optional(),
      /** TCG event log sent with a TPM quote, e.g. /sys/kernel/security/tpm0/binary_bios_measurements. */
      tpmEventLog: z.string().min(1).optional(),
    })
    .default({ source: 'configfs-tsm', tsmRoot: '/sys/kernel/config/tsm/report', tpmDevice: '/dev/tpmrm0' }),
  volume: z.strictObject({
    /** Broker resource holding the volume key (repo/type/tag). */
    resource,
    device: z.string().min(1),
    /** device-mapper name: the volume appears as /dev/mapper/<name>. */
    name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - (at most 64)'),
    /** Filesystem made on first boot, after luksFormat. */
    filesystem: z.enum(['ext4', 'xfs', 'none']).default('ext4'),
    /** Format a blank volume (first boot). A volume that is neither blank nor LUKS2 is never formatted. */
    formatBlank: z.boolean().default(true),
    /**
     * `open` maps the volume (the boot configuration). `test-passphrase` only checks the key
     * against the LUKS2 header and maps nothing: for CI and demos without device-mapper.
     */
    unlock: z.enum(['open', 'test-passphrase']).default('open'),
    pbkdf: z.enum(['pbkdf2', 'argon2id']).default('pbkdf2'),
    cryptsetup: z.string().min(1).default('cryptsetup'),
    minKeyBytes: z.number().int().min(32).max(1024).default(32),
  }),
  /** The whole unlock, retries included, must finish within this; then the failure action. */
  deadlineSeconds: z.number().positive().max(3600).default(300),
  retry: z
    .strictObject({
      initialSeconds: z.number().positive().max(60).default(1),
      maxSeconds: z.number().positive().max(600).default(30),
      factor: z.number().min(1).max(10).default(2),
      /** Fraction of each delay drawn at random (0-1), so that a fleet does not retry in lockstep. */
      jitter: z.number().min(0).max(1).default(0.3),
    })
    .default({ initialSeconds: 1, maxSeconds: 30, factor: 2, jitter: 0.3 }),
  failure: z
    .strictObject({
      action: z.enum(FAILURE_ACTIONS, { message: `must be one of ${FAILURE_ACTIONS.join(', ')} (there is no "continue")` }).default('poweroff'),
      /** argv of the command that performs it (default: systemctl <action> --force --force). */
      command: z.array(z.string().min(1)).min(1).optional(),
    })
    .default({ action: 'poweroff' }),
  /**
   * Seal the volume key to the vTPM under a PCR policy after each broker unlock, kept as a token
   * in the volume's LUKS2 header; later boots with unchanged PCRs unlock without the broker.
   */
  tpmSeal: z
    .strictObject({
      enabled: z.boolean().default(false),
      pcrs: z.array(z.number().int().min(0).max(23)).min(1).default([7, 11]),
      /** /dev/tpmrm0, or swtpm:host=H,port=P. */
      device: tpmTarget.default('/dev/tpmrm0'),
    })
    .optional(),
});

export type AgentConfig = z.infer<typeof agentConfigSchema>;

/** Parses and validates agent YAML; every problem is one line naming the key. */
export function parseAgentConfig(text: string, source = 'agent config'): AgentConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true, maxAliasCount: 10 });
  } catch (e) {
    throw inputError('AGENT_BAD_CONFIG', `${source}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const r = agentConfigSchema.safeParse(doc);
  if (!r.success) {
    const i = r.error.issues[0];
    throw inputError('AGENT_BAD_CONFIG', `${source}: ${i ? `${i.path.map(String).join('.') || '(top level)'}: ${i.message}` : 'invalid'}`);
  }
  const c = r.data;
  if (c.broker.ca !== undefined && c.broker.pinSha256 !== undefined) throw inputError('AGENT_BAD_CONFIG', `${source}: broker: give ca or pinSha256, not both`);
  if (c.retry.initialSeconds > c.retry.maxSeconds) throw inputError('AGENT_BAD_CONFIG', `${source}: retry.initialSeconds is larger than retry.maxSeconds`);
  return c;
}

export function loadAgentConfig(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw inputError('AGENT_NO_CONFIG', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseAgentConfig(text, path);
}
