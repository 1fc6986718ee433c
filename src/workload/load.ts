import { inputError } from '../errors.js';
import { looksLikeCompose, modelFromCompose } from './compose.js';
import { looksLikeKubernetes, modelFromKubernetes } from './kubernetes.js';
import { looksLikeManifest, parseManifest, type ParsedManifest } from './manifest.js';
import { modelFromManifest, type InputFormat, type WorkloadModel } from './model.js';
import { parseYamlDocuments } from './yaml.js';

export interface LoadedWorkload {
  format: InputFormat;
  model: WorkloadModel;
  /** Set for a Coffer manifest. */
  manifest?: ParsedManifest;
}

/**
 * Reads a Coffer workload manifest, Kubernetes objects (one or more documents) or a Compose file
 * into the common model. The format is recognised from the content (`version` + `containers`,
 * `apiVersion` + `kind`, `services`), or forced with `format`.
 */
export function loadWorkload(text: string, source: string, format?: InputFormat): LoadedWorkload {
  const docs = parseYamlDocuments(text, source, 'WORKLOAD_SYNTAX');
  const first = docs[0]?.value;
  const f = format ?? (looksLikeManifest(first) ? 'coffer' : looksLikeKubernetes(first) ? 'kubernetes' : looksLikeCompose(first) ? 'compose' : undefined);
  if (f === undefined) throw inputError('WORKLOAD_UNKNOWN_FORMAT', `${source}:1:1: not a Coffer workload manifest (version, containers), Kubernetes objects (apiVersion, kind) or a Compose file (services)`);
  if (f === 'coffer') {
    const manifest = parseManifest(text, source);
    return { format: f, model: modelFromManifest(manifest), manifest };
  }
  if (f === 'kubernetes') return { format: f, model: modelFromKubernetes(docs, source) };
  if (docs.length !== 1) throw inputError('WORKLOAD_INVALID', `${source}: a Compose file is one YAML document, found ${docs.length}`);
  return { format: f, model: modelFromCompose(docs[0] as (typeof docs)[number]) };
}
