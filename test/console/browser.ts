import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { type BrowserContext, chromium } from 'playwright-core'
import { REPO_ROOT } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'

/**
 * Debian's Chromium, driven by playwright-core through its executable path
 * (playwright never downloads a browser here). Screenshots go to
 * test-artifacts/console/ (gitignored).
 */

const CANDIDATES = [process.env.TANDEM_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(
  (p): p is string => Boolean(p),
)

/** The Chromium binary to use, or undefined when none is installed. */
export const CHROMIUM = CANDIDATES.find((p) => existsSync(p))

export const NO_CHROMIUM_MESSAGE = `no Chromium found (looked for ${CANDIDATES.join(', ')}); install Debian's chromium (apt-get install chromium) or set TANDEM_CHROMIUM`

export const ARTIFACTS = join(REPO_ROOT, 'test-artifacts', 'console')

export interface Browser {
  context: BrowserContext
  close(): Promise<void>
}

export async function launchChromium(options: { colorScheme?: 'light' | 'dark' } = {}): Promise<Browser> {
  if (!CHROMIUM) throw new Error(NO_CHROMIUM_MESSAGE)
  mkdirSync(ARTIFACTS, { recursive: true })
  const profile = tempDir('tandem-chromium-')
  const context = await chromium.launchPersistentContext(profile.path, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    colorScheme: options.colorScheme ?? 'light',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  return {
    context,
    close: async () => {
      await context.close()
      profile.remove()
    },
  }
}
