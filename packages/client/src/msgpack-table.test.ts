import { Packr as MsgpackrPackr } from 'msgpackr'
import { describe, expect, it } from 'vitest'
import { TandemClient } from './index.js'

// The server refuses msgpackr's own extension types (README, Error codes) by
// changing msgpackr's one table per process; a process that loads only the
// SDK keeps msgpackr as it is, for the application's own use of it.
describe('the SDK and msgpackr', () => {
  it('leaves msgpackr’s own extension types decodable in the process that loads it', () => {
    expect(TandemClient).toBeTypeOf('function')
    const packr = new MsgpackrPackr({ moreTypes: true, structuredClone: true })
    const cyclic: { self?: unknown; set: Set<number> } = { set: new Set([1, 2]) }
    cyclic.self = cyclic
    const back = packr.unpack(packr.pack(cyclic)) as typeof cyclic
    expect(back.self).toBe(back)
    expect(back.set).toEqual(new Set([1, 2]))
  })
})
