import { createHash, timingSafeEqual } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { inputError, verifyError } from '../errors.js';
import { DIGEST } from './reference.js';
import { LayerScanner, type LayerSecret } from './layers.js';

/**
 * OCI images (image-spec v1.1) and Docker schema 2 images, verified from the root descriptor down
 * to every layer: each blob's length must equal its descriptor's size and its digest must match,
 * before anything is parsed from it. Manifests and configs are read into memory (bounded); layers
 * are streamed through the hash and never kept unless the caller asks. Schema 1 manifests,
 * foreign layers and descriptors with external `urls` are refused.
 */

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

const MANIFEST_TYPES = new Set<string>([MEDIA.ociManifest, MEDIA.dockerManifest]);
const INDEX_TYPES = new Set<string>([MEDIA.ociIndex, MEDIA.dockerList]);
const CONFIG_TYPES = new Set<string>([MEDIA.ociConfig, MEDIA.dockerConfig]);
const LAYER_TYPES = new Set<string>([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
]);
export const ACCEPT_MANIFESTS = [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerList].join(', ');

/** Manifests, indexes and configs larger than this are refused (the distribution spec suggests 4 MiB). */
export const MAX_JSON_BLOB = 4 * 1024 * 1024;

const platform = z.object({
  architecture: z.string().min(1),
  os: z.string().min(1),
  variant: z.string().optional(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
});

export const descriptorSchema = z.object({
  mediaType: z.string().min(1),
  digest: z.string().regex(DIGEST, 'must be sha256:<64 hex> or sha512:<128 hex>'),
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: platform.optional(),
  artifactType: z.string().optional(),
});
export type Descriptor = z.output<typeof descriptorSchema>;
export type Platform = z.output<typeof platform>;

const manifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
const indexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageManifest = z.output<typeof manifestSchema>;
export type ImageIndex = z.output<typeof indexSchema>;

export function digestOf(bytes: Buffer, algorithm: 'sha256' | 'sha512' = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

function algorithmOf(digest: string): 'sha256' | 'sha512' {
  return digest.startsWith('sha512:') ? 'sha512' : 'sha256';
}

function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Checks bytes against a descriptor: size first (cheap, and refuses an oversize blob), then digest. */
export function verifyBlob(desc: Pick<Descriptor, 'digest' | 'size'>, bytes: Buffer, what = 'blob'): void {
  if (bytes.length !== desc.size) throw verifyError('OCI_SIZE_MISMATCH', `${what} ${desc.digest}: ${bytes.length} bytes, the descriptor says ${desc.size}`);
  const got = digestOf(bytes, algorithmOf(desc.digest));
  if (!sameDigest(got, desc.digest)) throw verifyError('OCI_DIGEST_MISMATCH', `${what}: content hashes to ${got}, the descriptor says ${desc.digest}`);
}

/** Where blobs come from: an OCI layout directory or a registry. */
export interface BlobSource {
  /** The bytes of a blob of at most `limit` bytes (manifests, configs). */
  read(desc: Descriptor, limit: number): Promise<Buffer>;
  /** The blob as a stream of chunks (layers). */
  stream(desc: Descriptor): AsyncIterable<Uint8Array>;
}

async function hashStream(desc: Descriptor, chunks: AsyncIterable<Uint8Array>, what: string, tap?: (c: Uint8Array) => Promise<void> | void): Promise<void> {
  const h = createHash(algorithmOf(desc.digest));
  let n = 0;
  for await (const c of chunks) {
    n += c.length;
    if (n > desc.size) throw verifyError('OCI_SIZE_MISMATCH', `${what} ${desc.digest}: longer than the ${desc.size} bytes its descriptor says`);
    h.update(c);
    await tap?.(c);
  }
  if (n !== desc.size) throw verifyError('OCI_SIZE_MISMATCH', `${what} ${desc.digest}: ${n} bytes, the descriptor says ${desc.size}`);
  const got = `${algorithmOf(desc.digest)}:${h.digest('hex')}`;
  if (!sameDigest(got, desc.digest)) throw verifyError('OCI_DIGEST_MISMATCH', `${what}: content hashes to ${got}, the descriptor says ${desc.digest}`);
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    throw inputError('OCI_BAD_JSON', `${what} is not JSON`);
  }
}

function checkDescriptor(d: Descriptor, what: string): void {
  if (d.urls && d.urls.length > 0) throw inputError('OCI_EXTERNAL_BLOB', `${what} ${d.digest} names external urls: foreign blobs are not fetched`);
}

/** The media type of a manifest document, from its descriptor and its own mediaType field, which must agree. */
function manifestKind(desc: Descriptor, doc: unknown): 'manifest' | 'index' {
  const d = doc as { mediaType?: unknown; manifests?: unknown; config?: unknown; layers?: unknown } | null;
  const own = d?.mediaType;
  if (own !== undefined && own !== desc.mediaType) throw verifyError('OCI_MEDIA_TYPE_MISMATCH', `${desc.digest} says it is ${String(own)}, its descriptor says ${desc.mediaType}`);
  // A document that is both (no mediaType of its own, manifests and config/layers) would mean one
  // image to a reader that trusts the descriptor and another to one that sniffs the content
  // (image-spec v1.0.2 media-type confusion): refused either way.
  const both = d !== null && typeof d === 'object' && d.manifests !== undefined && (d.config !== undefined || d.layers !== undefined);
  if (both) throw verifyError('OCI_MEDIA_TYPE_MISMATCH', `${desc.digest} has both manifests and config/layers: ambiguous between an index and a manifest`);
  if (MANIFEST_TYPES.has(desc.mediaType)) return 'manifest';
  if (INDEX_TYPES.has(desc.mediaType)) return 'index';
  if (desc.mediaType === 'application/vnd.docker.distribution.manifest.v1+json' || desc.mediaType === 'application/vnd.docker.distribution.manifest.v1+prettyjws') {
    throw inputError('OCI_SCHEMA1', 'Docker schema 1 manifests are not supported (no content-addressed config; deprecated)');
  }
  throw inputError('OCI_UNKNOWN_MEDIA_TYPE', `unknown manifest media type ${desc.mediaType}`);
}

export interface PlatformWanted {
  os: string;
  architecture: string;
  variant?: string;
}

export function platformMatches(p: Platform | undefined, want: PlatformWanted): boolean {
  return p !== undefined && p.os === want.os && p.architecture === want.architecture && (want.variant === undefined || p.variant === want.variant);
}

export interface VerifiedImage {
  /** The digest of the root the caller asked for (an index or a manifest). */
  rootDigest: string;
  /** The index, when the root was one. */
  index?: ImageIndex;
  manifestDigest: string;
  manifestMediaType: string;
  manifest: ImageManifest;
  manifestBytes: Buffer;
  configDigest: string;
  config: Record<string, unknown>;
  configBytes: Buffer;
  layers: Descriptor[];
  platform?: Platform;
  /** With `scanLayers`: secret files found in verified layers, and layers that could not be scanned. */
  layerSecrets?: LayerSecret[];
  layersNotScanned?: { layer: number; why: string }[];
}

export interface VerifyImageOptions {
  /** Look for secret files in the layers as they are hashed (docs/workload.md, CW043). */
  scanLayers?: boolean;
}

/**
 * Verifies an image from its root descriptor: the root manifest or index, the selected platform's
 * manifest, the config, and every layer. Any mismatch is a CofferError (exit 1); nothing from a
 * blob is trusted before its digest is checked.
 */
export async function verifyImage(src: BlobSource, root: Descriptor, want?: PlatformWanted, opts: VerifyImageOptions = {}): Promise<VerifiedImage> {
  checkDescriptor(root, 'manifest');
  const rootBytes = await src.read(root, MAX_JSON_BLOB);
  verifyBlob(root, rootBytes, 'manifest');
  let doc = parseJson(rootBytes, `manifest ${root.digest}`);
  let desc = root;
  let bytes = rootBytes;
  let index: ImageIndex | undefined;
  if (manifestKind(root, doc) === 'index') {
    const r = indexSchema.safeParse(doc);
    if (!r.success) throw inputError('OCI_BAD_INDEX', `image index ${root.digest}: ${r.error.issues[0]?.path.join('.') ?? ''} ${r.error.issues[0]?.message ?? ''}`);
    index = r.data;
    const images = index.manifests.filter((m) => MANIFEST_TYPES.has(m.mediaType));
    const chosen = want ? images.filter((m) => platformMatches(m.platform, want)) : images.length === 1 ? images : [];
    if (chosen.length === 0) {
      const offered = images.map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? `/${m.platform.variant}` : ''}` : 'unknown')).join(', ');
      throw inputError('OCI_NO_PLATFORM', want ? `image index ${root.digest} has no manifest for ${want.os}/${want.architecture}${want.variant ? `/${want.variant}` : ''} (it has ${offered || 'none'})` : `image index ${root.digest} has ${images.length} manifests (${offered}): name a platform`);
    }
    if (chosen.length > 1) throw inputError('OCI_AMBIGUOUS_PLATFORM', `image index ${root.digest} has ${chosen.length} manifests for that platform`);
    desc = chosen[0] as Descriptor;
    checkDescriptor(desc, 'manifest');
    bytes = await src.read(desc, MAX_JSON_BLOB);
    verifyBlob(desc, bytes, 'manifest');
    doc = parseJson(bytes, `manifest ${desc.digest}`);
    if (manifestKind(desc, doc) !== 'manifest') throw inputError('OCI_NESTED_INDEX', `image index ${root.digest} points at another index: nested indexes are not followed`);
  }
  const m = manifestSchema.safeParse(doc);
  if (!m.success) throw inputError('OCI_BAD_MANIFEST', `image manifest ${desc.digest}: ${m.error.issues[0]?.path.join('.') ?? ''} ${m.error.issues[0]?.message ?? ''}`);
  const manifest = m.data;
  if (!CONFIG_TYPES.has(manifest.config.mediaType)) throw inputError('OCI_NOT_AN_IMAGE', `manifest ${desc.digest} has config type ${manifest.config.mediaType}: not a container image`);
  checkDescriptor(manifest.config, 'config');
  const configBytes = await src.read(manifest.config, MAX_JSON_BLOB);
  verifyBlob(manifest.config, configBytes, 'config');
  const config = parseJson(configBytes, `config ${manifest.config.digest}`);
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw inputError('OCI_BAD_CONFIG', `config ${manifest.config.digest} is not a JSON object`);
  const cfg = config as Record<string, unknown>;
  const diffIds = (cfg.rootfs as { diff_ids?: unknown } | undefined)?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== manifest.layers.length) throw verifyError('OCI_LAYER_COUNT', `config ${manifest.config.digest} lists ${Array.isArray(diffIds) ? diffIds.length : 'no'} diff_ids for ${manifest.layers.length} layers`);
  if (index && desc.platform && (cfg.os !== desc.platform.os || cfg.architecture !== desc.platform.architecture)) {
    throw verifyError('OCI_PLATFORM_MISMATCH', `config says ${String(cfg.os)}/${String(cfg.architecture)}, the index says ${desc.platform.os}/${desc.platform.architecture}`);
  }
  const layerSecrets: LayerSecret[] = [];
  const layersNotScanned: { layer: number; why: string }[] = [];
  for (const [i, layer] of manifest.layers.entries()) {
    if (!LAYER_TYPES.has(layer.mediaType)) throw inputError('OCI_UNKNOWN_LAYER', `layer ${i} has media type ${layer.mediaType} (foreign and unknown layer types are refused)`);
    checkDescriptor(layer, 'layer');
    const diffId: unknown = diffIds[i];
    const scanner = opts.scanLayers ? new LayerScanner(i, layer.mediaType, typeof diffId === 'string' && diffId.startsWith('sha512:') ? 'sha512' : 'sha256') : undefined;
    await hashStream(layer, src.stream(layer), `layer ${i}`, scanner ? (c) => scanner.push(c) : undefined);
    if (scanner) {
      const r = await scanner.end();
      // The runtime finds an already-unpacked layer by its diff_id (chain id) and then skips
      // unpacking this one: a diff_id that is not the hash of this layer's content would run
      // another image's files under this image's signature.
      if (r.diffId !== undefined && (typeof diffId !== 'string' || !sameDigest(r.diffId, diffId))) {
        throw verifyError('OCI_DIFF_ID_MISMATCH', `layer ${i}: uncompressed content hashes to ${r.diffId}, the config's diff_id says ${String(diffId)}`);
      }
      layerSecrets.push(...r.secrets);
      if (r.notScanned) layersNotScanned.push({ layer: i, why: r.notScanned });
    }
  }
  return {
    rootDigest: root.digest,
    ...(index ? { index } : {}),
    manifestDigest: desc.digest,
    manifestMediaType: desc.mediaType,
    manifest,
    manifestBytes: bytes,
    configDigest: manifest.config.digest,
    config: cfg,
    configBytes,
    layers: manifest.layers,
    ...(desc.platform ? { platform: desc.platform } : {}),
    ...(opts.scanLayers ? { layerSecrets, layersNotScanned } : {}),
  };
}

/** An OCI image layout directory (image-spec v1.1 image-layout.md). */
export class OciLayout implements BlobSource {
  private constructor(
    readonly dir: string,
    readonly index: ImageIndex,
  ) {}

  static async open(dir: string): Promise<OciLayout> {
    let marker: unknown;
    try {
      marker = JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8'));
    } catch {
      throw inputError('OCI_NOT_A_LAYOUT', `${dir} is not an OCI image layout (no readable oci-layout file)`);
    }
    const v = (marker as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
    if (v !== '1.0.0') throw inputError('OCI_LAYOUT_VERSION', `${dir}: image layout version ${String(v)} is not supported (1.0.0 is)`);
    let idx: unknown;
    try {
      idx = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
    } catch {
      throw inputError('OCI_NOT_A_LAYOUT', `${dir}: index.json is missing or not JSON`);
    }
    const r = indexSchema.safeParse(idx);
    if (!r.success) throw inputError('OCI_BAD_INDEX', `${dir}/index.json: ${r.error.issues[0]?.path.join('.') ?? ''} ${r.error.issues[0]?.message ?? ''}`);
    return new OciLayout(dir, r.data);
  }

  private path(desc: Descriptor): string {
    const [alg, hex] = desc.digest.split(':') as [string, string];
    return join(this.dir, 'blobs', alg, hex);
  }

  async read(desc: Descriptor, limit: number): Promise<Buffer> {
    if (desc.size > limit) throw inputError('OCI_BLOB_TOO_LARGE', `${desc.digest}: ${desc.size} bytes, more than ${limit}`);
    const fh = await open(this.path(desc), 'r').catch(() => {
      throw verifyError('OCI_BLOB_MISSING', `blob ${desc.digest} is not in the layout`);
    });
    try {
      // One byte more than the descriptor says: a longer file is caught as a size mismatch.
      const buf = Buffer.alloc(desc.size + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  async *stream(desc: Descriptor): AsyncIterable<Uint8Array> {
    const fh = await open(this.path(desc), 'r').catch(() => {
      throw verifyError('OCI_BLOB_MISSING', `blob ${desc.digest} is not in the layout`);
    });
    try {
      for await (const c of fh.createReadStream({ highWaterMark: 1 << 20 })) yield c as Buffer;
    } finally {
      await fh.close();
    }
  }

  /** The root descriptor named `ref` (org.opencontainers.image.ref.name), or the only one. */
  root(ref?: string): Descriptor {
    const all = this.index.manifests;
    const hits = ref === undefined ? all : all.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref);
    if (hits.length === 1) return hits[0] as Descriptor;
    if (hits.length === 0) throw inputError('OCI_REF_NOT_FOUND', ref === undefined ? `${this.dir}: the layout names no image` : `${this.dir}: no image named ${ref}`);
    throw inputError('OCI_AMBIGUOUS_REF', `${this.dir}: ${hits.length} images${ref === undefined ? '' : ` named ${ref}`}: name one`);
  }
}
