/**
 * Polls `check` until it returns a truthy value, and resolves with it; past
 * the deadline it rejects, saying what it waited for and the last error the
 * check threw. The one way tandem's tests and benchmark wait for a
 * condition: never a fixed sleep.
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  {
    timeoutMs = 20_000,
    intervalMs = 25,
    what = 'condition',
  }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value) return value as NonNullable<T>
    } catch (err) {
      lastError = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`)
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/** waitFor for callers that carry on either way: true once `check` holds, false at the deadline. */
export function holdsWithin(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 25,
): Promise<boolean> {
  return waitFor(check, { timeoutMs, intervalMs }).then(
    () => true,
    () => false,
  )
}
