import { describe, expect, it } from 'vitest'
import type { WebSocket } from 'ws'
import { SerialInbox } from './link.js'

/** A socket that only records whether reading is paused. */
class PausableSocket {
  reading = true
  pauses = 0
  pause(): void {
    this.reading = false
    this.pauses++
  }
  resume(): void {
    this.reading = true
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } {
  let resolve!: () => void
  let reject!: (err: Error) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

function inbox(maxDepth = 64): { socket: PausableSocket; inbox: SerialInbox } {
  const socket = new PausableSocket()
  return { socket, inbox: new SerialInbox(socket as unknown as WebSocket, () => {}, maxDepth) }
}

describe('SerialInbox', () => {
  it('stays paused while more frames than allowed are in the committer, after the handlers that handed them on return', async () => {
    const { socket, inbox: box } = inbox()
    const frames = Array.from({ length: 5 }, deferred)
    // Each handler hands its frame to the committer and returns at once.
    for (const frame of frames) box.push(() => box.handedOff(frame.promise, 4))
    await box.idle()
    expect(socket.reading, 'five frames in flight, four allowed: the socket must stay paused').toBe(false)

    // Down to three in flight: still more than half of four.
    frames[0].resolve()
    frames[1].reject(new Error('a failed frame settles too'))
    await Promise.resolve()
    await Promise.resolve()
    expect(socket.reading).toBe(false)
    frames[2].resolve()
    await frames[2].promise
    await Promise.resolve()
    expect(socket.reading, 'two in flight, half of four: reading again').toBe(true)
  })

  it('keeps the two reasons to pause apart: tasks draining do not end a pause for work in flight, nor the reverse', async () => {
    const { socket, inbox: box } = inbox(2)
    const work = deferred()
    const gate = deferred()
    box.push(() => box.handedOff(work.promise, 0))
    box.push(() => gate.promise)
    box.push(() => {})
    expect(socket.reading, 'three tasks waiting, two allowed').toBe(false)
    gate.resolve()
    await box.idle()
    expect(socket.reading, 'the tasks ran, the handed-on work has not').toBe(false)
    work.resolve()
    await work.promise
    await Promise.resolve()
    expect(socket.reading).toBe(true)
  })

  it('tells how long each hold for work in flight lasted, once it ends', async () => {
    const socket = new PausableSocket()
    let now = 1000
    const held: number[] = []
    const box = new SerialInbox(
      socket as unknown as WebSocket,
      () => {},
      64,
      (ms) => held.push(ms),
      {
        now: () => now,
        wall: () => now,
      },
    )
    const frames = Array.from({ length: 3 }, deferred)
    for (const frame of frames) box.push(() => box.handedOff(frame.promise, 2))
    await box.idle()
    expect(socket.reading).toBe(false)
    now += 10
    frames[0].resolve()
    await frames[0].promise
    await Promise.resolve()
    expect(socket.reading, 'two in flight, more than half of two').toBe(false)
    expect(held).toEqual([])
    now += 30
    frames[1].resolve()
    await frames[1].promise
    await Promise.resolve()
    expect(socket.reading, 'one in flight, half of two: reading again').toBe(true)
    expect(held).toEqual([40])
    // Settling the last starts no hold and ends none.
    frames[2].resolve()
    await frames[2].promise
    await Promise.resolve()
    expect(held).toEqual([40])
    expect(socket.pauses).toBe(1)
  })
})
