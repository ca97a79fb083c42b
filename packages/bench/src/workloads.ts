import type { LoadWorkloadName as WorkloadName } from './options.js'

/** Fraction of operations that are reads, per workload (YCSB A, B, C plus the two pure ones). */
export const READ_FRACTION: Record<WorkloadName, number> = {
  put: 0,
  get: 1,
  a: 0.5,
  b: 0.95,
  c: 1,
}

export const WORKLOAD_TITLE: Record<WorkloadName, string> = {
  put: 'put-only',
  get: 'get-only',
  a: 'YCSB A (50% get, 50% put)',
  b: 'YCSB B (95% get, 5% put)',
  c: 'YCSB C (get-only)',
}

export function readsKeys(workload: WorkloadName): boolean {
  return READ_FRACTION[workload] > 0
}
