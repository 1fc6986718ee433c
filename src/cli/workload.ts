import type { Command } from 'commander';
import { inputError } from '../errors.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  OciLayout,
  RegistryClient,
  checkImageConfig,
  checkLayerSecrets,
  checkModel,
  loadWorkload,
  parseImageReference,
  registryKey,
  runtimeConfig,
  severityAtLeast,
  toSarif,
  verifyCosignImage,
  verifyImage,
  verifyManifestImages,
  verifySigstoreBundle,
  workloadIdentity,
  SEVERITIES,
  RULES,
  type Finding,
  type ImageDefaults,
  type InputFormat,
  type PlatformWanted,
  type RegistryOptions,
  type Severity,
  type VerifiedImage,
} from '../workload/index.js';
import { action, common, VERSION, type CliContext } from './main.js';
import { toJson, EXIT_OK, EXIT_FAILED } from './output.js';
import { collect, readInput } from './files.js';

interface CheckFlags {
  json?: boolean;
  format?: string;
  failOn?: string;
  allowRegistry?: string[];
  input?: string;
}

const INPUTS: readonly InputFormat[] = ['coffer', 'kubernetes', 'compose'];

function inputFormat(s: string | undefined): InputFormat | undefined {
  if (s === undefined) return undefined;
  if (!(INPUTS as readonly string[]).includes(s)) throw inputError('USAGE', `--input must be one of ${INPUTS.join(', ')}, got "${s}"`);
  return s as InputFormat;
}

function failOn(s: string | undefined): Severity | 'never' {
  const v = s ?? 'high';
  if (v !== 'never' && !(SEVERITIES as readonly string[]).includes(v)) throw inputError('USAGE', `--fail-on must be one of ${SEVERITIES.join(', ')} or never, got "${v}"`);
  return v as Severity | 'never';
}

function textReport(file: string, format: InputFormat, findings: readonly Finding[]): string {
  if (findings.length === 0) return `CLEAN  ${file} (${format}): no finding`;
  const lines = findings.map((f) => `${f.file}:${f.line}:${f.column}: ${f.severity.padEnd(8)} ${f.ruleId} [SP 800-190 ${f.section}] ${f.message}`);
  const counts = SEVERITIES.slice()
    .reverse()
    .map((s) => [s, findings.filter((f) => f.severity === s).length] as const)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s}`)
    .join(', ');
  return `${lines.join('\n')}\n${findings.length} finding${findings.length === 1 ? '' : 's'} (${counts}) in ${file} (${format})`;
}

interface RegistryFlags {
  plainHttp?: boolean;
  username?: string;
  passwordFile?: string;
}

function registryOptions(f: RegistryFlags): RegistryOptions {
  if ((f.username === undefined) !== (f.passwordFile === undefined)) throw inputError('USAGE', '--username and --password-file go together');
  const password = f.passwordFile !== undefined ? readInput(f.passwordFile, 'password file').toString('utf8').replace(/\r?\n$/, '') : undefined;
  return { ...(f.plainHttp ? { plainHttp: true } : {}), ...(f.username !== undefined && password !== undefined ? { credentials: { username: f.username, password } } : {}) };
}

function platformArg(s: string | undefined): PlatformWanted | undefined {
  if (s === undefined) return undefined;
  const [os, architecture, variant, extra] = s.split('/');
  if (!os || !architecture || extra !== undefined) throw inputError('USAGE', `--platform must be os/arch or os/arch/variant, got "${s}"`);
  return { os, architecture, ...(variant ? { variant } : {}) };
}

function jsonFile(path: string, what: string): unknown {
  try {
    return JSON.parse(readInput(path, what).toString('utf8')) as unknown;
  } catch (e) {
    if ((e as { code?: string }).code === 'FILE_UNREADABLE') throw e;
    throw inputError('BAD_JSON', `${what} ${path} is not JSON`);
  }
}

async function pullImage(ref: string, f: RegistryFlags & { layout?: string; platform?: string }): Promise<VerifiedImage> {
  const platform = platformArg(f.platform);
  if (f.layout !== undefined) {
    const l = await OciLayout.open(f.layout);
    return verifyImage(l, l.root(ref === '-' ? undefined : ref), platform, { scanLayers: true });
  }
  const r = parseImageReference(ref);
  const client = RegistryClient.forReference(r, registryOptions(f));
  const v = await client.pull(r.digest ?? r.tag ?? 'latest', platform, { scanLayers: true });
  return v;
}

export function registerWorkload(program: Command, ctx: CliContext): void {
  const wl = program.command('workload').description('container workloads: manifests, NIST SP 800-190 checks, identity');

  common(
    wl
      .command('check')
      .description('check a workload manifest, Kubernetes objects or a Compose file against NIST SP 800-190 countermeasures')
      .argument('<file>', 'YAML file (- for standard input)')
      .option('--format <fmt>', 'output: text or sarif (SARIF 2.1.0)', 'text')
      .option('--fail-on <severity>', `exit 1 when a finding is at least this severe: ${SEVERITIES.join(', ')} or never`, 'high')
      .option('--allow-registry <host>', 'a registry images may come from (repeatable; adds to the manifest list)', collect)
      .option('--input <format>', `force the input format: ${INPUTS.join(', ')} (default: recognised from the content)`),
  ).action(
    action(ctx, (file: string, f: CheckFlags) => {
      if (f.format !== 'text' && f.format !== 'sarif') throw inputError('USAGE', `--format must be text or sarif, got "${f.format ?? ''}"`);
      const threshold = failOn(f.failOn);
      const forced = inputFormat(f.input);
      const loaded = loadWorkload(readInput(file, 'workload file').toString('utf8'), file, forced);
      const findings = checkModel(loaded.model, { allowRegistries: f.allowRegistry ?? [] });
      const failing = threshold !== 'never' && findings.some((x) => severityAtLeast(x.severity, threshold));
      if (f.format === 'sarif') ctx.io.out(JSON.stringify(toSarif(findings, { version: VERSION }), null, 2));
      else if (f.json) ctx.io.out(toJson({ ok: !failing, file, input: loaded.format, failOn: threshold, findings }));
      else ctx.io.out(textReport(file, loaded.format, findings));
      return failing ? EXIT_FAILED : EXIT_OK;
    }),
  );

  common(
    wl
      .command('rules')
      .description('list the rules: id, severity, SP 800-190 section, title'),
  ).action(
    action(ctx, (f: { json?: boolean }) => {
      ctx.io.out(f.json ? toJson({ ok: true, rules: RULES }) : RULES.map((r) => `${r.id}  ${r.severity.padEnd(8)} ${r.section.padEnd(6)} ${r.name}: ${r.title}`).join('\n'));
      return EXIT_OK;
    }),
  );

  common(
    wl
      .command('digest')
      .description('the workload identity: SHA-384 of the canonical manifest, and the values to launch the VM with')
      .argument('<file>', 'Coffer workload manifest (- for standard input)'),
  ).action(
    action(ctx, (file: string, f: { json?: boolean }) => {
      const loaded = loadWorkload(readInput(file, 'workload manifest').toString('utf8'), file, 'coffer');
      if (!loaded.manifest) throw inputError('WORKLOAD_INVALID', `${file}: not a Coffer workload manifest`);
      const id = workloadIdentity(loaded.manifest.manifest);
      if (f.json) {
        ctx.io.out(toJson({ ok: true, file, name: loaded.manifest.manifest.name, sha384: id.sha384, sha256: id.sha256, snpHostData: id.snpHostData, tdxMrConfigId: id.tdxMrConfigId, policy: { workload: { digest: [id.sha384, id.sha256] } } }));
      } else {
        ctx.io.out(
          [
            `Workload:        ${loaded.manifest.manifest.name}`,
            `Identity:        sha384:${id.sha384}`,
            `SNP HOST_DATA:   ${id.snpHostData}  (SHA-256 of the same canonical bytes)`,
            `TDX MRCONFIGID:  ${id.tdxMrConfigId}`,
            'Policy (with measurements.snp/tdx of the image whose agent enforces it: the launcher chooses HOST_DATA):',
            '  workload:',
            `    digest: ["${id.sha384}", "${id.sha256}"]`,
          ].join('\n'),
        );
      }
      return EXIT_OK;
    }),
  );

  common(
    wl
      .command('pull')
      .description('fetch an image from a registry (or an OCI layout) and verify every digest down to the layers')
      .argument('<ref>', 'image reference (registry/repo:tag or @sha256:...), or with --layout the ref name (- for the only image)')
      .option('--layout <dir>', 'read an OCI image layout directory instead of a registry')
      .option('--platform <os/arch[/variant]>', 'platform to select from an image index')
      .option('--plain-http', 'reach a loopback registry over http')
      .option('--username <name>', 'registry user (with --password-file)')
      .option('--password-file <file>', 'file holding the registry password or token'),
  ).action(
    action(ctx, async (ref: string, f: RegistryFlags & { layout?: string; platform?: string; json?: boolean }) => {
      const v = await pullImage(ref, f);
      const findings = [...checkImageConfig(v.config, `${ref} config`), ...checkLayerSecrets(v.layerSecrets ?? [], ref)];
      const size = v.layers.reduce((n, l) => n + l.size, 0);
      if (f.json) ctx.io.out(toJson({ ok: true, ref, root: v.rootDigest, manifest: v.manifestDigest, mediaType: v.manifestMediaType, config: v.configDigest, platform: v.platform, layers: v.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })), findings, layersNotScanned: v.layersNotScanned ?? [] }));
      else {
        ctx.io.out(
          [
            `VERIFIED  ${ref}: ${v.layers.length} layer${v.layers.length === 1 ? '' : 's'}, ${size} bytes, every digest checked`,
            `  root      ${v.rootDigest}`,
            ...(v.rootDigest !== v.manifestDigest ? [`  manifest  ${v.manifestDigest}${v.platform ? ` (${v.platform.os}/${v.platform.architecture}${v.platform.variant ? `/${v.platform.variant}` : ''})` : ''}`] : []),
            `  config    ${v.configDigest}`,
            ...findings.map((x) => `  ${x.severity} ${x.ruleId} [SP 800-190 ${x.section}] ${x.message}`),
            ...(v.layersNotScanned ?? []).map((x) => `  NOT SCANNED layer ${x.layer} for secrets: ${x.why}`),
          ].join('\n'),
        );
      }
      return findings.length > 0 ? EXIT_FAILED : EXIT_OK;
    }),
  );

  common(
    wl
      .command('verify-signature')
      .description('verify an image signature: cosign (public key, stored in the registry) or a Sigstore bundle against a trusted root, offline')
      .argument('<ref>', 'image reference pinned by digest (registry/repo@sha256:...)')
      .option('--key <pem>', 'cosign public key (PEM)')
      .option('--bundle <file>', 'Sigstore bundle (JSON)')
      .option('--trusted-root <file>', 'Sigstore trusted root (JSON), for --bundle')
      .option('--bundle-key <hint=pem>', 'public key for a public-key bundle, by hint (repeatable)', collect)
      .option('--artifact <file>', 'the signed manifest, for a message-signature bundle')
      .option('--identity <issuer=subject>', 'expected keyless identity, for a certificate bundle')
      .option('--predicate-type <uri>', 'for a DSSE (in-toto) bundle: the predicate type that counts as approval')
      .option('--plain-http', 'reach a loopback registry over http')
      .option('--username <name>', 'registry user (with --password-file)')
      .option('--password-file <file>', 'file holding the registry password or token'),
  ).action(
    action(ctx, async (ref: string, f: RegistryFlags & { key?: string; bundle?: string; trustedRoot?: string; bundleKey?: string[]; artifact?: string; identity?: string; predicateType?: string; json?: boolean }) => {
      const r = parseImageReference(ref);
      if (!r.digest) throw inputError('USAGE', `${ref} is not pinned by digest: a signature is checked for one exact manifest`);
      if ((f.key === undefined) === (f.bundle === undefined)) throw inputError('USAGE', 'give --key (cosign) or --bundle (Sigstore)');
      let how: string;
      if (f.key !== undefined) {
        const client = RegistryClient.forReference(r, registryOptions(f));
        await verifyCosignImage(client, r.digest, readInput(f.key, 'public key'), `${r.registry}/${r.repository}`);
        how = 'cosign signature by the given key';
      } else {
        if (f.trustedRoot === undefined) throw inputError('USAGE', '--bundle needs --trusted-root');
        const keys = Object.fromEntries(
          (f.bundleKey ?? []).map((kv) => {
            const i = kv.indexOf('=');
            if (i <= 0) throw inputError('USAGE', `--bundle-key must be hint=file, got "${kv}"`);
            return [kv.slice(0, i), readInput(kv.slice(i + 1), 'bundle key')];
          }),
        );
        let identity: { issuer: string; subject: string } | undefined;
        if (f.identity !== undefined) {
          const i = f.identity.indexOf('=');
          if (i <= 0) throw inputError('USAGE', '--identity must be issuer=subject');
          identity = { issuer: f.identity.slice(0, i), subject: f.identity.slice(i + 1) };
        }
        const res = verifySigstoreBundle({ bundle: jsonFile(f.bundle as string, 'bundle'), trustedRoot: jsonFile(f.trustedRoot, 'trusted root'), digest: r.digest, keys, ...(f.artifact ? { artifact: readInput(f.artifact, 'artifact') } : {}), ...(identity ? { identity } : {}), ...(f.predicateType ? { predicateType: f.predicateType } : {}) });
        how = `Sigstore bundle (${res.signer})`;
      }
      ctx.io.out(f.json ? toJson({ ok: true, ref, digest: r.digest, verifiedBy: how }) : `VERIFIED  ${ref}: ${how}`);
      return EXIT_OK;
    }),
  );

  common(
    wl
      .command('runtime-config')
      .description('generate the OCI runtime config.json (runtime-spec 1.2.0) of a container, hardened as the manifest says')
      .argument('<file>', 'Coffer workload manifest')
      .requiredOption('--container <name>', 'container of the manifest')
      .option('--image-config <file>', 'the image configuration (JSON) for defaults: User, Env, Entrypoint, Cmd, WorkingDir')
      .option('--out <dir>', 'write <dir>/config.json instead of printing it'),
  ).action(
    action(ctx, (file: string, f: { container: string; imageConfig?: string; out?: string; json?: boolean }) => {
      const loaded = loadWorkload(readInput(file, 'workload manifest').toString('utf8'), file, 'coffer');
      if (!loaded.manifest) throw inputError('WORKLOAD_INVALID', `${file}: not a Coffer workload manifest`);
      const img = f.imageConfig !== undefined ? ((jsonFile(f.imageConfig, 'image config') as { config?: ImageDefaults } | null)?.config ?? undefined) : undefined;
      const r = runtimeConfig(loaded.manifest.manifest, f.container, img);
      const text = `${JSON.stringify(r.config, null, 2)}\n`;
      if (f.out !== undefined) {
        mkdirSync(f.out, { recursive: true });
        writeFileSync(join(f.out, 'config.json'), text, { mode: 0o644 });
        ctx.io.out(f.json ? toJson({ ok: true, file: join(f.out, 'config.json'), secretFiles: r.secretFiles, secretEnv: r.secretEnv }) : `WROTE  ${join(f.out, 'config.json')} (${r.secretFiles.length} secret file${r.secretFiles.length === 1 ? '' : 's'} and ${r.secretEnv.length} secret variable${r.secretEnv.length === 1 ? '' : 's'} for the agent to provide)`);
      } else ctx.io.out(f.json ? toJson({ ok: true, config: r.config, secretFiles: r.secretFiles, secretEnv: r.secretEnv }) : text);
      return EXIT_OK;
    }),
  );

  common(
    wl
      .command('verify')
      .description("check every image of a manifest as the agent would: pinned, pulled with every digest verified, signed by the manifest's signer, no secret in its config")
      .argument('<file>', 'Coffer workload manifest')
      .option('--platform <os/arch[/variant]>', 'platform to select from image indexes')
      .option('--plain-http', 'reach loopback registries over http')
      .option('--username <name>', 'registry user (with --password-file)')
      .option('--password-file <file>', 'file holding the registry password or token'),
  ).action(
    action(ctx, async (file: string, f: RegistryFlags & { platform?: string; json?: boolean }) => {
      const loaded = loadWorkload(readInput(file, 'workload manifest').toString('utf8'), file, 'coffer');
      if (!loaded.manifest) throw inputError('WORKLOAD_INVALID', `${file}: not a Coffer workload manifest`);
      const reg = registryOptions(f);
      // One set of credentials is for one registry: never hand it to every host a manifest names.
      const hosts = new Set(loaded.manifest.manifest.containers.map((c) => registryKey(parseImageReference(c.image).registry)));
      if (reg.credentials && hosts.size > 1) throw inputError('USAGE', `--username/--password-file name one registry's credentials, but the manifest pulls from ${[...hosts].join(', ')}`);
      const platform = platformArg(f.platform);
      const results = await verifyManifestImages(loaded.manifest.manifest, { registry: () => reg, ...(platform ? { platform } : {}) });
      const findings = results.flatMap((r) => r.findings);
      if (f.json) ctx.io.out(toJson({ ok: findings.length === 0, file, containers: results }));
      else ctx.io.out(results.map((r) => `${r.findings.length === 0 ? 'VERIFIED' : 'FINDINGS'}  ${r.container}: ${r.image} (${r.layers} layers, cosign signature)${r.findings.map((x) => `\n  ${x.severity} ${x.ruleId} ${x.message}`).join('')}`).join('\n'));
      return findings.length > 0 ? EXIT_FAILED : EXIT_OK;
    }),
  );
}
