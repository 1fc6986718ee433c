import { dirname, resolve } from 'node:path';
import { gatherEvidence, parseEvidenceDescription, type EvidenceDescription, type GatheredEvidence } from '../appraisal/index.js';
import { readInput, parseTime } from './files.js';

/**
 * Evidence descriptions as the CLI reads them (shared by `coffer explain`, and meant for
 * `coffer policy check|test`): parse the file, choose the time (--at, else the description's `at`,
 * else now), and verify the evidence it names with paths relative to the description.
 */

export function readEvidenceDescription(path: string): EvidenceDescription {
  return parseEvidenceDescription(readInput(path, 'evidence description').toString('utf8'), path);
}

/** The verification and appraisal time: --at, else the description's `at`, else now. */
export function descriptionTime(desc: EvidenceDescription, atFlag: string | undefined): Date {
  return atFlag !== undefined ? parseTime(atFlag) : desc.at !== undefined ? parseTime(desc.at) : new Date();
}

export interface DescribedEvidence extends GatheredEvidence {
  at: Date;
}

/** Verifies every piece of evidence a description file names. */
export function gatherDescribedEvidence(path: string, desc: EvidenceDescription, atFlag: string | undefined): DescribedEvidence {
  const at = descriptionTime(desc, atFlag);
  return { ...gatherEvidence(desc, dirname(resolve(path)), (p, what) => readInput(p, what), at), at };
}
