import { cpus, freemem, loadavg, release, totalmem, type } from 'node:os'

export interface Machine {
  cpuModel: string
  cores: number
  memoryMB: number
  freeMemoryMB: number
  os: string
  nodeVersion: string
  redisVersion: string | null
  tandemVersion: string
  /** 1, 5 and 15-minute load averages when the run started. */
  loadAverage: number[]
  /** The same when the run finished (set by runBench). */
  loadAverageAtEnd?: number[]
}

export function describeMachine(redisVersion: string | undefined, tandemVersion: string): Machine {
  const list = cpus()
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryMB: Math.round(totalmem() / 2 ** 20),
    freeMemoryMB: Math.round(freemem() / 2 ** 20),
    os: `${type()} ${release()}`,
    nodeVersion: process.version,
    redisVersion: redisVersion ?? null,
    tandemVersion,
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
  }
}
