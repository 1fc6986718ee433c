import { verifyError } from '../errors.js';
import type { WorkloadManifest } from './manifest.js';
import type { PlatformWanted } from './oci.js';
import { parseImageReference, registryKey } from './reference.js';
import { RegistryClient, type RegistryOptions } from './registry.js';
import { checkImageConfig, checkLayerSecrets, type Finding } from './rules.js';
import { verifyCosignImage } from './signatures.js';

export interface ContainerImageResult {
  container: string;
  image: string;
  manifestDigest: string;
  layers: number;
  signature: 'cosign-key';
  findings: Finding[];
}

/**
 * Checks every image a manifest names, as the guest agent would before starting it: pinned by
 * digest, pulled with every digest verified, signed by the signer the manifest names, and no
 * secret in its configuration. The first failure stops the check (fail closed). Keyless signers
 * are verified from a Sigstore bundle (verifySigstoreBundle), not from the registry: a manifest
 * that names one is refused here rather than passed unverified.
 */
export async function verifyManifestImages(m: WorkloadManifest, opts: { registry?: (host: string) => RegistryOptions; platform?: PlatformWanted } = {}): Promise<ContainerImageResult[]> {
  const out: ContainerImageResult[] = [];
  for (const c of m.containers) {
    const ref = parseImageReference(c.image);
    if (!ref.digest) throw verifyError('WORKLOAD_NOT_PINNED', `container ${c.name}: image ${c.image} is not pinned by digest`);
    if (!c.signer) throw verifyError('WORKLOAD_NO_SIGNER', `container ${c.name}: the manifest names no signer for ${c.image}`);
    if (!('publicKey' in c.signer)) throw verifyError('WORKLOAD_KEYLESS_NEEDS_BUNDLE', `container ${c.name}: a keyless signer is verified from a Sigstore bundle (workload verify-signature --bundle), not from the registry`);
    // The allow-list is enforced here, before anything is fetched (credentials included), not only
    // reported by `workload check` (CW004).
    if (m.registries !== undefined && !m.registries.some((r) => registryKey(r.replace(/^https?:\/\//, '')) === registryKey(ref.registry))) {
      throw verifyError('WORKLOAD_REGISTRY_NOT_ALLOWED', `container ${c.name}: registry ${ref.registry} is not in the manifest's registries (${m.registries.join(', ')})`);
    }
    const client = RegistryClient.forReference(ref, opts.registry?.(ref.registry) ?? {});
    const img = await client.pull(ref.digest, opts.platform, { scanLayers: true });
    await verifyCosignImage(client, img.rootDigest, c.signer.publicKey, `${ref.registry}/${ref.repository}`);
    const findings = [...checkImageConfig(img.config, `${c.image} config`), ...checkLayerSecrets(img.layerSecrets ?? [], c.image)];
    out.push({ container: c.name, image: c.image, manifestDigest: img.manifestDigest, layers: img.layers.length, signature: 'cosign-key', findings });
  }
  return out;
}
