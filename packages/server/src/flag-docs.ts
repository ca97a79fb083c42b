import { type Config, configSchema, envName, FLAG_NAMES, type FlagDoc, formatDuration, kebab } from './config.js'
import { DEFAULT_TUNING, TUNING_NAMES, type TuningDoc, tuningSchema } from './tuning.js'

/**
 * tandem-server's --help and the README's flag table, both made from the
 * config schema's metadata (config.ts): one description per setting, in
 * one place. `npx -y pnpm@12.4.2 run readme:flags` rewrites the README's
 * table; a test checks that it is current.
 */
interface FlagInfo {
  name: keyof Config
  flag: string
  env: string
  value: string | undefined
  shownDefault: string
  description: string
}

/** The settings a user can see (hidden ones are for features not built). */
function flags(): FlagInfo[] {
  const out: FlagInfo[] = []
  for (const name of FLAG_NAMES) {
    const schema = configSchema.shape[name]
    const meta = schema.meta() as FlagDoc | undefined
    if (!meta) throw new Error(`config field ${name} has no description`)
    if (meta.hidden) continue
    out.push({
      name,
      flag: `--${kebab(name)}`,
      env: envName(name),
      value: meta.value,
      shownDefault: meta.shownDefault ?? showDefault(defaultOf(schema), meta.duration === true),
      description: meta.description,
    })
  }
  return out
}

function defaultOf(schema: unknown): unknown {
  return (schema as { _zod?: { def?: { defaultValue?: unknown } } })._zod?.def?.defaultValue
}

function showDefault(value: unknown, duration: boolean): string {
  if (value === undefined) return 'none'
  if (duration && typeof value === 'number') return formatDuration(value)
  if (Array.isArray(value)) return value.length === 0 ? 'none' : value.join(',')
  return String(value)
}

const WIDTH = 80

/** tandem-server --help. */
export function usage(): string {
  const lines = [
    'usage: tandem-server [flags]',
    '',
    ...wrap(
      'Each flag is also an environment variable TANDEM_<NAME> (e.g. TANDEM_LOG_RETENTION) and a key of a JSON file given with --config FILE (camelCase, e.g. logRetention). Flags win over the environment, which wins over the file. A DURATION takes a unit: 250ms, 60s, 2m, 1h; a plain number is milliseconds.',
      0,
    ),
    '',
  ]
  for (const f of flags()) {
    lines.push(`  ${f.flag}${f.value ? ` ${f.value}` : ''}  (default ${f.shownDefault})`)
    lines.push(...wrap(f.description, 6))
  }
  lines.push('  --config FILE', ...wrap('JSON file with any of the above (camelCase keys).', 6))
  lines.push('', 'tunables (--tune NAME=VALUE[,NAME=VALUE...]):')
  for (const name of TUNING_NAMES) {
    const meta = tuningSchema.shape[name].meta() as TuningDoc | undefined
    lines.push(`  ${name}  (default ${DEFAULT_TUNING[name]} ${meta?.unit ?? ''})`)
    lines.push(...wrap(meta?.description ?? '', 6))
  }
  lines.push('')
  lines.push('  --version', ...wrap('Print the version and exit.', 6))
  lines.push('  --help, -h', ...wrap('Print this and exit.', 6))
  lines.push('', 'exit status: 0 after SIGTERM/SIGINT (a clean shutdown), 1 when the node cannot start, 2 on bad flags')
  return lines.join('\n')
}

/** The README's flag table (markdown). */
export function flagsMarkdown(): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|')
  const rows = flags().map(
    (f) =>
      `| \`${cell(`${f.flag}${f.value ? ` ${f.value}` : ''}`)}\` | ${cell(f.shownDefault)} | ${cell(f.description)} |`,
  )
  return ['| flag | default | meaning |', '|---|---|---|', ...rows].join('\n')
}

function wrap(text: string, indent: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/)) {
    if (line && indent + line.length + 1 + word.length > WIDTH) {
      lines.push(' '.repeat(indent) + line)
      line = word
    } else line = line ? `${line} ${word}` : word
  }
  if (line) lines.push(' '.repeat(indent) + line)
  return lines
}
