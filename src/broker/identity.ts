/**
 * PCRs 0-15 are reset only by a platform reset; 16 (debug) and 23 (application) can be reset by
 * any software at locality 0, and 17-22 by DRTM (a locality the hypervisor can speak in a vTPM),
 * so those only narrow a VM identity, never make one.
 */
export function isStaticPcr(index: string | number): boolean {
  const n = Number(index);
  return Number.isInteger(n) && n >= 0 && n <= 15;
}
