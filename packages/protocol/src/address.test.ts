import { describe, expect, it } from 'vitest'
import { formatHostPort, hostPortProblem, parseHostPort } from './address.js'

describe('HOST:PORT', () => {
  it.each([
    ['127.0.0.1:7379', '127.0.0.1', 7379],
    ['localhost:1', 'localhost', 1],
    ['db-1.example.com:65535', 'db-1.example.com', 65535],
    ['[::1]:7379', '::1', 7379],
    ['[fe80::1:2]:80', 'fe80::1:2', 80],
  ])('accepts %s', (text, host, port) => {
    expect(hostPortProblem(text)).toBeNull()
    expect(parseHostPort(text)).toEqual({ host, port })
    // Whatever passes is something a WebSocket URL can hold.
    expect(() => new URL(`ws://${text}/`)).not.toThrow()
  })

  it.each([
    ['127.0.0.1:99999', /out of range/],
    ['127.0.0.1:0', /out of range/],
    ['127.0.0.1:65536', /out of range/],
    ['127.0.0.1', /HOST:PORT/],
    [':7379', /HOST:PORT/],
    ['host:', /HOST:PORT/],
    ['host:port', /HOST:PORT/],
    ['a b:1', /HOST:PORT/],
    ['::1:7379', /HOST:PORT/],
    ['[::1]', /HOST:PORT/],
    ['[nonsense]:80', /IPv6/],
    ['999.1.1.1:80', /IPv4/],
    ['1.2.3:80', /IPv4/],
    ['ws://host:80', /HOST:PORT/],
    ['host:80/path', /HOST:PORT/],
    ['', /HOST:PORT/],
  ])('refuses %s', (text, problem) => {
    expect(hostPortProblem(text)).toMatch(problem)
    expect(() => parseHostPort(text)).toThrow(TypeError)
  })

  it('refuses what is not a string, and quotes long input cut short', () => {
    expect(hostPortProblem(7379)).toMatch(/number/)
    expect(hostPortProblem(null)).toMatch(/HOST:PORT/)
    expect(hostPortProblem(`${'h'.repeat(10_000)}:x`)?.length).toBeLessThan(200)
  })

  it('formats an IPv6 host in brackets', () => {
    expect(formatHostPort('::1', 80)).toBe('[::1]:80')
    expect(formatHostPort('127.0.0.1', 80)).toBe('127.0.0.1:80')
    expect(formatHostPort('localhost', 80)).toBe('localhost:80')
  })
})
