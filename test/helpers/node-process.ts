import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

// The tandem-server harness is the benchmark's (one implementation for
// tests and tandem-bench); tests import it from here.
export { type LogLine, NodeProcess, SERVER_BIN, startNode } from '@tandem/bench/fixtures'

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const CLI_BIN = join(REPO_ROOT, 'packages/client/bin/tandem.js')
