import type { Command } from 'commander';
import { lineLogger, loadAgentConfig, probeVolume, runAgent, tpmAkInfo } from '../guest/index.js';
import { action, common, type CliContext } from './main.js';
import { EXIT_FAILED, EXIT_OK, toJson } from './output.js';

/**
 * `coffer agent ...`: the guest agent. `unlock` is what coffer-unlock.service runs in the initrd;
 * on failure it runs the configured failure action (power off by default) and exits 1. An
 * unreadable or invalid configuration exits 2 without any action of its own: the unit's
 * FailureAction= powers the VM off (the agent cannot know which action was meant).
 */

interface UnlockFlags {
  config: string;
  json?: boolean;
}

export function registerAgent(program: Command, ctx: CliContext): void {
  const agent = program.command('agent').description('guest agent: attest, fetch the volume key, unlock the data volume, or stop the VM');

  common(
    agent
      .command('unlock')
      .description('unlock (or on first boot format) the data volume with the key the broker releases; on failure run the failure action')
      .option('--config <file>', 'agent configuration (YAML)', '/etc/coffer/agent.yaml'),
  ).action(
    action(ctx, async (f: UnlockFlags) => {
      const cfg = loadAgentConfig(f.config);
      const log = lineLogger((l) => ctx.io.err(l));
      const r = await runAgent(cfg, { log });
      if (f.json) ctx.io.out(toJson({ ok: r.exitCode === 0, ...(r.outcome ? { outcome: r.outcome } : {}), ...(r.error ? { error: r.error } : {}) }));
      return r.exitCode === 0 ? EXIT_OK : EXIT_FAILED;
    }),
  );

  common(
    agent
      .command('check-config')
      .description('validate an agent configuration without contacting anything')
      .option('--config <file>', 'agent configuration (YAML)', '/etc/coffer/agent.yaml'),
  ).action(
    action(ctx, async (f: UnlockFlags) => {
      const cfg = loadAgentConfig(f.config);
      if (f.json) ctx.io.out(toJson({ ok: true, config: cfg }));
      else ctx.io.out(`${f.config}: valid (broker ${cfg.broker.url}, volume ${cfg.volume.device} as ${cfg.volume.name}, failure action ${cfg.failure.action})`);
      return EXIT_OK;
    }),
  );

  common(
    agent
      .command('probe')
      .description('say whether a volume is LUKS2, blank (would be formatted on first boot) or something else (would be refused)')
      .argument('<device>', 'block device or image file'),
  ).action(
    action(ctx, async (device: string, f: { json?: boolean }) => {
      const s = await probeVolume(device);
      if (f.json) ctx.io.out(toJson({ ok: true, device, ...s }));
      else ctx.io.out(`${device}: ${s.kind === 'luks2' ? 'LUKS2' : s.kind === 'blank' ? 'blank (would be formatted on first boot)' : `neither LUKS2 nor blank: ${s.what} (would be refused)`}`);
      return EXIT_OK;
    }),
  );

  common(
    agent
      .command('tpm-ak')
      .description(
        'print the public key (PEM) of the TPM attestation key the agent quotes with, to pin at the broker (trusted key purpose tpm-ak); its SHA-256 fingerprint (on stderr) is what a per-VM volume identity names (coffer broker volume provision --tpm-ak)',
      )
      .option('--tpm <target>', 'TPM: /dev/tpmrm0 or swtpm:host=H,port=P', '/dev/tpmrm0'),
  ).action(
    action(ctx, async (f: { tpm: string; json?: boolean }) => {
      const ak = await tpmAkInfo(f.tpm);
      if (f.json) ctx.io.out(toJson({ ok: true, pem: ak.pem, sha256: ak.sha256, name: ak.name }));
      else {
        // stdout stays a PEM file (`coffer agent tpm-ak > ak.pem`); the fingerprint is for the operator.
        ctx.io.out(ak.pem.trim());
        ctx.io.err(`AK fingerprint (identity.tpm.ak, --tpm-ak): ${ak.sha256}`);
        ctx.io.err(`AK TPM name: ${ak.name}`);
      }
      return EXIT_OK;
    }),
  );
}
