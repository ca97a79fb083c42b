/**
 * Runs read-then-write commands on one key one after another on this node
 * (SET ... GET reads a key's seq, then writes on condition of it). The
 * condition alone is enough for correctness, but front-end connections
 * racing on one hot key would then mostly fail theirs and read again; in
 * turn, each reads the state the one before left. A key's entry is
 * dropped when its last command ends, so the map holds only keys with a
 * command running, which the connections' in-flight limits bound.
 */
export class KeyLocks {
  private readonly tails = new Map<string, Promise<unknown>>()

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve()
    const result = before.then(fn, fn)
    const tail = result.catch(() => {})
    this.tails.set(key, tail)
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key)
    })
    return result
  }

  get size(): number {
    return this.tails.size
  }
}
