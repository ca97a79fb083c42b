/**
 * What tandem's tests share with the benchmark (`@tandem/bench/fixtures`):
 * real tandem-server processes, a node's status, metrics and full scan
 * read from outside, and waiting for a condition. They live here because
 * tandem-bench needs them at run time; tests import them, the bench never
 * imports a test.
 */

export { LinkProxy } from './topology/link-proxy.js'
export { type LogLine, NodeProcess, SERVER_BIN, startNode } from './topology/node-process.js'
export { type FullStatus, firstDifference, metricSum, scanAll, statusOf, typed } from './topology/node-state.js'
export { freePort } from './topology/server-process.js'
export { waitFor } from './wait.js'
