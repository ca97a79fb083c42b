/**
 * `{id: 1, op: 'batch', ops: A}` with A = `[{ops: A}]`, written by hand with
 * msgpackr's structured-clone extensions (0x69 names a value, 0x70 points
 * back at it): the cyclic request a msgpackr client could send. tandem
 * refuses those extensions (README, Error codes); with them let through
 * (TANDEM_TEST_MSGPACKR_EXTENSIONS=1) it reaches a handler that throws.
 */
export function cyclicBatch(): Buffer {
  const str = (s: string) => Buffer.concat([Buffer.from([0xa0 | s.length]), Buffer.from(s)])
  return Buffer.concat([
    Buffer.from([0x83]),
    str('id'),
    Buffer.from([0x01]),
    str('op'),
    str('batch'),
    str('ops'),
    // ext 0x69, id 1: the array that follows is value 1
    Buffer.from([0xd6, 0x69, 0, 0, 0, 1]),
    Buffer.from([0x91, 0x81]),
    str('ops'),
    // ext 0x70, id 1: a pointer back at value 1
    Buffer.from([0xd6, 0x70, 0, 0, 0, 1]),
  ])
}
