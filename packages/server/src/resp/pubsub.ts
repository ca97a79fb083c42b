import { compileGlob, type Glob } from './glob.js'

/**
 * Channel subscriptions of the RESP connections. Only tandem itself
 * publishes (the Sentinel events, `+switch-master`); there is no PUBLISH
 * command, since messages would not replicate.
 */
export interface Subscriber {
  /** Sends a message the client did not ask for, in order with its replies. */
  deliver(items: (string | null)[]): void
  readonly channels: Set<string>
  readonly patterns: Map<string, Glob>
}

export class PubSub {
  private readonly channels = new Map<string, Set<Subscriber>>()
  private readonly patterns = new Set<Subscriber>()

  get subscriberCount(): number {
    return this.channels.size + this.patterns.size
  }

  subscribe(s: Subscriber, channel: string): void {
    s.channels.add(channel)
    let set = this.channels.get(channel)
    if (!set) this.channels.set(channel, (set = new Set()))
    set.add(s)
  }

  unsubscribe(s: Subscriber, channel: string): void {
    s.channels.delete(channel)
    const set = this.channels.get(channel)
    if (!set) return
    set.delete(s)
    if (set.size === 0) this.channels.delete(channel)
  }

  psubscribe(s: Subscriber, pattern: string): void {
    s.patterns.set(pattern, compileGlob(pattern))
    this.patterns.add(s)
  }

  punsubscribe(s: Subscriber, pattern: string): void {
    s.patterns.delete(pattern)
    if (s.patterns.size === 0) this.patterns.delete(s)
  }

  /** Forgets a subscriber (its connection closed). */
  remove(s: Subscriber): void {
    for (const channel of [...s.channels]) this.unsubscribe(s, channel)
    s.patterns.clear()
    this.patterns.delete(s)
  }

  /** Delivers `message` to the channel's subscribers; returns how many got it. */
  publish(channel: string, message: string): number {
    let count = 0
    for (const s of this.channels.get(channel) ?? []) {
      s.deliver(['message', channel, message])
      count++
    }
    for (const s of this.patterns) {
      for (const [pattern, glob] of s.patterns) {
        if (!glob.test(channel)) continue
        s.deliver(['pmessage', pattern, channel, message])
        count++
      }
    }
    return count
  }
}
