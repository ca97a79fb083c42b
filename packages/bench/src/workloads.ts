import type { LoadWorkloadName as WorkloadName } from './options.js'

/** Fraction of operations that are reads, per workload (YCSB A, B, C plus the two pure ones). */
export const READ_FRACTION: Record<WorkloadName, number> = {
  put: 0,
  get: 1,
  a: 0.5,
  b: 0.95,
  c: 1,
}

export function readsKeys(workload: WorkloadName): boolean {
  return READ_FRACTION[workload] > 0
}
