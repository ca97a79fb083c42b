import { spawn } from 'node:child_process'
import type { Readable } from 'node:stream'
import { CLI_BIN } from './node-process.js'

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the `tandem` CLI as a user would and collects its output and exit status. */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
  input: string | Buffer = '',
): Promise<CliResult> {
  return runNodeBin(CLI_BIN, args, env, timeoutMs, input)
}

/**
 * Runs one of the project's programs (a bin script) with Node, collecting
 * its output and exit status. Its stdin is a pipe that gives `input`, then
 * ends, as a shell's `printf ... |` does.
 */
export function runNodeBin(
  bin: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
  input: string | Buffer = '',
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    proc.stdout.on('data', (d) => (stdout += d))
    proc.stderr.on('data', (d) => (stderr += d))
    // A program that exits without reading its input closes the pipe first.
    proc.stdin.on('error', () => {})
    proc.stdin.end(input)
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`${bin} ${args.join(' ')} did not exit within ${timeoutMs} ms`))
    }, timeoutMs)
    // Its output is read to the end first: 'exit' can come before the last
    // of it. (Not 'close' alone: a child the program started and left
    // running, such as a bench's probe, may hold the pipes open; then the
    // output read within a short while is what there is.)
    proc.on('exit', (code) => {
      clearTimeout(timer)
      const ended = (stream: Readable) =>
        stream.readableEnded ? Promise.resolve() : new Promise((done) => stream.once('end', done))
      const bound = new Promise((done) => setTimeout(done, 5000).unref())
      Promise.race([Promise.all([ended(proc.stdout), ended(proc.stderr)]), bound]).then(() =>
        resolve({ code, stdout, stderr }),
      )
    })
  })
}
