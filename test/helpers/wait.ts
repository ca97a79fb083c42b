// Tests wait for conditions with a deadline, never with a fixed sleep; the
// one implementation is shared with tandem-bench.
export { waitFor } from '@tandem/bench/fixtures'
