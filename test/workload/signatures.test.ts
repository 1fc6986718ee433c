// Image signatures made in the test: cosign simple-signing payloads stored next to the image in a
// real docker-registry (tag sha256-<hex>.sig) and Sigstore bundles (message signature and DSSE)
// checked offline by @sigstore/verify against a supplied trusted root. Each verifies with the
// right key and digest, and fails with a wrong key, a changed digest or a flipped byte.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import {
  COSIGN_SIGNATURE_ANNOTATION,
  COSIGN_SIMPLE_SIGNING,
  MEDIA,
  RegistryClient,
  cosignSignatureTag,
  parseSignerKey,
  simpleSigningPayload,
  verifyCosignImage,
  verifyCosignPayload,
  verifySigstoreBundle,
} from '../../src/workload/index.js';
import { blob, makeImage, startRegistry, type TestRegistry } from './oci-helpers.js';

const image = makeImage({ files: [[{ name: 'app', content: 'signed app\n' }]] });
const other = makeImage({ files: [[{ name: 'app', content: 'another app\n' }]] });
const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const wrong = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }).toString();
const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c || assert.fail(`expected ${c}, got ${(e as { code?: string }).code}: ${(e as Error).message}`);

let reg: TestRegistry;
before(async () => {
  reg = await startRegistry();
});
after(async () => reg?.stop());

async function pushImage(c: RegistryClient, img: typeof image, tag: string): Promise<void> {
  for (const b of img.blobs) await c.pushBlob(b.bytes, b.digest);
  await c.pushManifest(tag, img.manifest.bytes, img.manifest.mediaType);
}

/** Stores a cosign signature artifact for `forDigest` whose payload names `names`. */
async function pushSignature(c: RegistryClient, forDigest: string, names: string, signer: KeyObject, repo: string): Promise<ReturnType<typeof blob>> {
  const payload = blob(simpleSigningPayload(repo, names), COSIGN_SIMPLE_SIGNING);
  const sig = sign('sha256', payload.bytes, signer).toString('base64');
  const config = blob(Buffer.from('{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}'), MEDIA.ociConfig);
  await c.pushBlob(payload.bytes, payload.digest);
  await c.pushBlob(config.bytes, config.digest);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.bytes.length },
      layers: [{ mediaType: COSIGN_SIMPLE_SIGNING, digest: payload.digest, size: payload.bytes.length, annotations: { [COSIGN_SIGNATURE_ANNOTATION]: sig } }],
    }),
  );
  await c.pushManifest(cosignSignatureTag(forDigest), manifest, MEDIA.ociManifest);
  return payload;
}

test('cosign: a signature stored in the registry verifies with the key and names the manifest digest', async () => {
  const repo = `${reg.host}/coffer/signed`;
  const c = new RegistryClient(reg.host, 'coffer/signed', { plainHttp: true });
  await pushImage(c, image, 'v1');
  await pushImage(c, other, 'v2');
  const payload = await pushSignature(c, image.manifest.digest, image.manifest.digest, key.privateKey, repo);
  const pulled = await c.pull('v1');
  const r = await verifyCosignImage(c, pulled.manifestDigest, pem(key.publicKey), repo);
  assert.equal(r.payload.critical.image['docker-manifest-digest'], image.manifest.digest);

  await assert.rejects(verifyCosignImage(c, image.manifest.digest, pem(wrong.publicKey)), code('COSIGN_NOT_VERIFIED'), 'wrong key');
  await assert.rejects(verifyCosignImage(c, other.manifest.digest, pem(key.publicKey)), code('COSIGN_NO_SIGNATURE'), 'another image');
  await assert.rejects(verifyCosignImage(c, image.manifest.digest, pem(key.publicKey), `${reg.host}/coffer/elsewhere`), code('COSIGN_NOT_VERIFIED'), 'another repository');

  // A valid signature of image v1 copied to v2's signature tag: it names the wrong digest.
  await pushSignature(c, other.manifest.digest, image.manifest.digest, key.privateKey, repo);
  await assert.rejects(verifyCosignImage(c, other.manifest.digest, pem(key.publicKey)), (e: unknown) => code('COSIGN_NOT_VERIFIED')(e) && /is for sha256:/.test((e as Error).message));

  // The payload changed in the registry's storage: its digest no longer matches.
  const p = reg.blobPath(payload.digest);
  const orig = readFileSync(p);
  writeFileSync(p, Buffer.from(orig.toString().replace(image.manifest.digest, other.manifest.digest)));
  try {
    await assert.rejects(verifyCosignImage(c, image.manifest.digest, pem(key.publicKey)), code('COSIGN_NOT_VERIFIED'));
  } finally {
    writeFileSync(p, orig);
  }
});

test('cosign payload: flipped payload or signature bytes fail; weak or unknown keys are refused', () => {
  const digest = image.manifest.digest;
  const payload = simpleSigningPayload('r/x', digest);
  const sig = sign('sha256', payload, key.privateKey);
  const k = parseSignerKey(pem(key.publicKey));
  verifyCosignPayload(payload, sig.toString('base64'), k, { digest });
  for (let i = 0; i < payload.length; i += 17) {
    const bad = Buffer.from(payload);
    bad[i] = (bad[i] as number) ^ 1;
    assert.throws(() => verifyCosignPayload(bad, sig.toString('base64'), k, { digest }), code('COSIGN_BAD_SIGNATURE'));
  }
  const badSig = Buffer.from(sig);
  badSig[badSig.length - 1] = (badSig[badSig.length - 1] as number) ^ 1;
  assert.throws(() => verifyCosignPayload(payload, badSig.toString('base64'), k, { digest }), code('COSIGN_BAD_SIGNATURE'));
  assert.throws(() => verifyCosignPayload(payload, sig.toString('base64'), k, { digest: other.manifest.digest }), code('COSIGN_WRONG_DIGEST'));
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
  assert.throws(() => parseSignerKey(pem(small.publicKey)), code('SIGNER_BAD_KEY'));
  assert.throws(() => parseSignerKey('not a key'), code('SIGNER_BAD_KEY'));
});

// An offline trusted root: no logs or CAs are needed for a key the caller supplies.
const trustedRoot = { mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] };

function messageBundle(artifact: Buffer, signer: KeyObject, hint = 'release-key'): unknown {
  return {
    mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    verificationMaterial: { publicKey: { hint }, tlogEntries: [], timestampVerificationData: { rfc3161Timestamps: [] } },
    messageSignature: {
      messageDigest: { algorithm: 'SHA2_256', digest: createHash('sha256').update(artifact).digest('base64') },
      signature: sign('sha256', artifact, signer).toString('base64'),
    },
  };
}

function dsseBundle(subjectDigest: string, signer: KeyObject, hint = 'release-key'): unknown {
  const payloadType = 'application/vnd.in-toto+json';
  const payload = Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: 'registry.example.com/app', digest: { sha256: subjectDigest.slice(7) } }], predicateType: 'https://coffer.dev/release/v1', predicate: {} }));
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${payloadType.length} ${payloadType} ${payload.length} `), payload]);
  return {
    mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    verificationMaterial: { publicKey: { hint }, tlogEntries: [], timestampVerificationData: { rfc3161Timestamps: [] } },
    dsseEnvelope: { payload: payload.toString('base64'), payloadType, signatures: [{ sig: sign('sha256', pae, signer).toString('base64'), keyid: '' }] },
  };
}

test('Sigstore bundle (message signature over the manifest): verifies offline; wrong key, other manifest, flipped byte fail', () => {
  const manifest = image.manifest.bytes;
  const keys = { 'release-key': pem(key.publicKey) };
  const ok = verifySigstoreBundle({ bundle: messageBundle(manifest, key.privateKey), trustedRoot, keys, artifact: manifest, digest: image.manifest.digest });
  assert.deepEqual(ok, { signer: 'public-key', digest: image.manifest.digest });
  assert.throws(() => verifySigstoreBundle({ bundle: messageBundle(manifest, wrong.privateKey), trustedRoot, keys, artifact: manifest, digest: image.manifest.digest }), code('SIGSTORE_NOT_VERIFIED'));
  assert.throws(() => verifySigstoreBundle({ bundle: messageBundle(manifest, key.privateKey), trustedRoot, keys: { 'release-key': pem(wrong.publicKey) }, artifact: manifest, digest: image.manifest.digest }), code('SIGSTORE_NOT_VERIFIED'));
  assert.throws(() => verifySigstoreBundle({ bundle: messageBundle(manifest, key.privateKey), trustedRoot, keys, artifact: manifest, digest: other.manifest.digest }), code('SIGSTORE_WRONG_DIGEST'));
  const flipped = Buffer.from(manifest);
  flipped[10] = (flipped[10] as number) ^ 1;
  assert.throws(() => verifySigstoreBundle({ bundle: messageBundle(manifest, key.privateKey), trustedRoot, keys, artifact: flipped, digest: image.manifest.digest }), code('SIGSTORE_NOT_VERIFIED'));
  assert.throws(() => verifySigstoreBundle({ bundle: messageBundle(manifest, key.privateKey, 'unknown-hint'), trustedRoot, keys, artifact: manifest, digest: image.manifest.digest }), code('SIGSTORE_UNKNOWN_KEY'));
  // The trusted root's own thresholds: requiring a transparency log entry fails for an offline bundle.
  assert.throws(() => verifySigstoreBundle({ bundle: messageBundle(manifest, key.privateKey), trustedRoot, keys, artifact: manifest, digest: image.manifest.digest, tlogThreshold: 1 }), code('SIGSTORE_NOT_VERIFIED'));
  assert.throws(() => verifySigstoreBundle({ bundle: { nonsense: true }, trustedRoot, keys, digest: image.manifest.digest }), code('SIGSTORE_BAD_BUNDLE'));
});

test('Sigstore bundle (DSSE in-toto statement naming the manifest digest): verifies for the expected predicate type; wrong key, digest or predicate type fail', () => {
  const keys = { 'release-key': pem(key.publicKey) };
  const RELEASE = 'https://coffer.dev/release/v1';
  // an attestation by the same key about the same image is not an approval unless it has the expected predicate type
  assert.throws(() => verifySigstoreBundle({ bundle: dsseBundle(image.manifest.digest, key.privateKey), trustedRoot, keys, digest: image.manifest.digest }), code('SIGSTORE_NO_PREDICATE_TYPE'));
  assert.throws(() => verifySigstoreBundle({ bundle: dsseBundle(image.manifest.digest, key.privateKey), trustedRoot, keys, digest: image.manifest.digest, predicateType: 'https://spdx.dev/Document' }), code('SIGSTORE_WRONG_PREDICATE'));
  verifySigstoreBundle({ bundle: dsseBundle(image.manifest.digest, key.privateKey), trustedRoot, keys, digest: image.manifest.digest, predicateType: RELEASE });
  assert.throws(() => verifySigstoreBundle({ bundle: dsseBundle(image.manifest.digest, wrong.privateKey), trustedRoot, keys, digest: image.manifest.digest, predicateType: RELEASE }), code('SIGSTORE_NOT_VERIFIED'));
  assert.throws(() => verifySigstoreBundle({ bundle: dsseBundle(image.manifest.digest, key.privateKey), trustedRoot, keys, digest: other.manifest.digest, predicateType: RELEASE }), code('SIGSTORE_WRONG_DIGEST'));
  const b = dsseBundle(image.manifest.digest, key.privateKey) as { dsseEnvelope: { payload: string } };
  const p = Buffer.from(b.dsseEnvelope.payload, 'base64');
  b.dsseEnvelope.payload = Buffer.from(p.toString().replace(image.manifest.digest.slice(7), other.manifest.digest.slice(7))).toString('base64');
  assert.throws(() => verifySigstoreBundle({ bundle: b, trustedRoot, keys, digest: other.manifest.digest, predicateType: RELEASE }), code('SIGSTORE_NOT_VERIFIED'), 'a payload changed after signing');
});

test('review: a signature manifest (fetched by tag, unvouched) with a descriptor lacking its size is refused, not read unbounded', async () => {
  const c = new RegistryClient(reg.host, 'coffer/sigshape', { plainHttp: true });
  await pushImage(c, image, 'v1');
  const payload = blob(simpleSigningPayload(`${reg.host}/coffer/sigshape`, image.manifest.digest), COSIGN_SIMPLE_SIGNING);
  await c.pushBlob(payload.bytes, payload.digest);
  const sig = sign('sha256', payload.bytes, key.privateKey).toString('base64');
  const config = blob(Buffer.from('{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}'), MEDIA.ociConfig);
  await c.pushBlob(config.bytes, config.digest);
  const put = (layer: Record<string, unknown>) =>
    c.pushManifest(
      cosignSignatureTag(image.manifest.digest),
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: config.mediaType, digest: config.digest, size: config.bytes.length }, layers: [{ mediaType: COSIGN_SIMPLE_SIGNING, digest: payload.digest, annotations: { [COSIGN_SIGNATURE_ANNOTATION]: sig }, ...layer }] })),
      MEDIA.ociManifest,
    );
  await put({ size: payload.bytes.length });
  assert.equal((await verifyCosignImage(c, image.manifest.digest, pem(key.publicKey))).verified, 1);
  await put({});
  await assert.rejects(verifyCosignImage(c, image.manifest.digest, pem(key.publicKey)), code('COSIGN_BAD_SIGNATURE_MANIFEST'));
});

test('review: a keyless bundle cannot be checked with no timestamp required (its certificate chain would go unchecked)', () => {
  const keyless = (m: unknown) => {
    const b = m as { verificationMaterial: Record<string, unknown> };
    b.verificationMaterial = { certificate: { rawBytes: Buffer.from('not checked before the option is refused').toString('base64') }, tlogEntries: [], timestampVerificationData: { rfc3161Timestamps: [] } };
    return b;
  };
  const manifest = image.manifest.bytes;
  const base = { trustedRoot, artifact: manifest, digest: image.manifest.digest, identity: { issuer: 'https://issuer.example', subject: 'ci@example.com' } };
  assert.throws(() => verifySigstoreBundle({ ...base, bundle: keyless(messageBundle(manifest, key.privateKey)), timestampThreshold: 0 }), code('SIGSTORE_BAD_OPTIONS'));
  // With the default threshold it goes to @sigstore/verify, which refuses it for want of a timestamp.
  assert.throws(() => verifySigstoreBundle({ ...base, bundle: keyless(messageBundle(manifest, key.privateKey)) }), code('SIGSTORE_NOT_VERIFIED'));
});

test('review: a P-384 key verifies signatures as cosign makes them (SHA-256) and with SHA-384; a wrong key still fails', () => {
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const other384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const digest = image.manifest.digest;
  const payload = simpleSigningPayload('r/x', digest);
  const k = parseSignerKey(pem(p384.publicKey));
  for (const h of ['sha256', 'sha384']) {
    const sig = sign(h, payload, p384.privateKey).toString('base64');
    verifyCosignPayload(payload, sig, k, { digest });
    assert.throws(() => verifyCosignPayload(payload, sig, parseSignerKey(pem(other384.publicKey)), { digest }), code('COSIGN_BAD_SIGNATURE'), h);
  }
  // A P-1363 (r||s) signature is not what cosign writes (ASN.1 DER): refused.
  const p1363 = sign('sha256', payload, { key: p384.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64');
  assert.throws(() => verifyCosignPayload(payload, p1363, k, { digest }), code('COSIGN_BAD_SIGNATURE'));
});

test('review: the repository a cosign payload names is compared with Docker Hub spellings folded, and nothing else', () => {
  const digest = image.manifest.digest;
  const k = parseSignerKey(pem(key.publicKey));
  const signed = (repo: string) => {
    const p = simpleSigningPayload(repo, digest);
    return [p, sign('sha256', p, key.privateKey).toString('base64')] as const;
  };
  const [p1, s1] = signed('index.docker.io/library/busybox');
  verifyCosignPayload(p1, s1, k, { digest, repository: 'docker.io/library/busybox' });
  assert.throws(() => verifyCosignPayload(p1, s1, k, { digest, repository: 'docker.io/library/alpine' }), code('COSIGN_WRONG_REPOSITORY'));
  const [p2, s2] = signed('ghcr.io/library/busybox');
  assert.throws(() => verifyCosignPayload(p2, s2, k, { digest, repository: 'docker.io/library/busybox' }), code('COSIGN_WRONG_REPOSITORY'));
});
