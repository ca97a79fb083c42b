import { spawn } from 'node:child_process'
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
    proc.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}
