#!/usr/bin/env node
// Lists the exports of packages/*/src that nothing in packages/ or test/
// imports, and exits 1 when there is one: an export nobody imports is dead
// code or a name that should be private to its file. What a package's
// entry points (package.json "exports", its bins) export is its public API
// and counts as used.
//
// usage: node tools/unused-exports.mjs [ROOT] [--known FILE]
//   ROOT defaults to the repo. FILE lists unused exports still waiting to be
//   removed, one `path: name` a line; they are tolerated, anything new fails,
//   and so does a line of FILE that is no longer unused (the list only shrinks).
//
// It reads the sources with the TypeScript parser only (no type checking),
// so it is quick enough for every `pnpm lint`. `export *` and
// `import * as ns` mark every export of their target as used.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import ts from 'typescript'

const args = process.argv.slice(2)
const knownAt = args.indexOf('--known')
const knownFile = knownAt >= 0 ? args.splice(knownAt, 2)[1] : undefined
const root = resolve(args[0] ?? join(dirname(new URL(import.meta.url).pathname), '..'))
const known = new Set(
  knownFile
    ? readFileSync(knownFile, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'))
    : [],
)
const SOURCE = /\.(ts|mts|js|mjs)$/

function walk(dir, out = []) {
  if (!existsSync(dir)) return out
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue
    const path = join(dir, name)
    if (statSync(path).isDirectory()) walk(path, out)
    else if (SOURCE.test(name) && !name.endsWith('.d.ts')) out.push(path)
  }
  return out
}

const packagesDir = join(root, 'packages')
const packages = existsSync(packagesDir)
  ? readdirSync(packagesDir).filter((p) => existsSync(join(packagesDir, p, 'package.json')))
  : []

/** packages/X/dist/Y.js (or .d.ts) -> packages/X/src/Y.ts, where that exists. */
function distToSrc(path) {
  const m = /^(.*\/packages\/[^/]+)\/dist\/(.*?)(\.d\.ts|\.js)$/.exec(path)
  if (!m) return path
  const src = join(m[1], 'src', m[2] + '.ts')
  return existsSync(src) ? src : path
}

// Package name -> { subpath -> source file }, and the entry point files.
const byName = new Map()
const entries = new Set()
for (const dir of packages) {
  const pkgDir = join(packagesDir, dir)
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
  const subpaths = new Map()
  const exp = pkg.exports ?? (pkg.main ? { '.': pkg.main } : {})
  for (const [sub, target] of Object.entries(typeof exp === 'string' ? { '.': exp } : exp)) {
    const file = typeof target === 'string' ? target : (target.default ?? target.import ?? target.types)
    if (!file) continue
    const src = distToSrc(resolve(pkgDir, file))
    subpaths.set(sub, src)
    entries.add(src)
  }
  byName.set(pkg.name, subpaths)
  const bins = typeof pkg.bin === 'string' ? [pkg.bin] : Object.values(pkg.bin ?? {})
  for (const bin of bins) {
    const binFile = resolve(pkgDir, bin)
    entries.add(binFile)
    // A bin is usually a stub that imports the compiled entry: follow it.
    for (const spec of importsOf(binFile).map((i) => i.spec)) {
      const target = resolveSpec(spec, binFile)
      if (target) entries.add(target)
    }
  }
}

function resolveSpec(spec, from) {
  if (spec.startsWith('.')) {
    const abs = distToSrc(resolve(dirname(from), spec))
    for (const candidate of [
      abs,
      abs.replace(/\.m?js$/, '.ts'),
      abs.replace(/\.mjs$/, '.mts'),
      abs + '.ts',
      join(abs, 'index.ts'),
    ]) {
      if (existsSync(candidate) && statSync(candidate).isFile()) return candidate
    }
    return undefined
  }
  const m = /^(@[^/]+\/[^/]+|[^@/][^/]*)(\/.*)?$/.exec(spec)
  const subpaths = m && byName.get(m[1])
  if (!subpaths) return undefined
  return subpaths.get(m[2] ? '.' + m[2] : '.')
}

/** { spec, names: string[] | '*' } for every import, re-export and dynamic import in a file. */
function importsOf(file) {
  if (!existsSync(file)) return []
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true)
  const out = []
  const visit = (node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause
      const names = []
      let all = false
      if (clause?.name) names.push('default')
      const bindings = clause?.namedBindings
      if (bindings && ts.isNamespaceImport(bindings)) all = true
      if (bindings && ts.isNamedImports(bindings)) {
        for (const el of bindings.elements) names.push((el.propertyName ?? el.name).text)
      }
      out.push({ spec: node.moduleSpecifier.text, names: all ? '*' : names })
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.exportClause
      const names =
        clause && ts.isNamedExports(clause) ? clause.elements.map((el) => (el.propertyName ?? el.name).text) : '*'
      out.push({ spec: node.moduleSpecifier.text, names })
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      out.push({ spec: node.arguments[0].text, names: '*' })
    }
    ts.forEachChild(node, visit)
  }
  visit(sf)
  return out
}

/** [name, line] for every export a file declares itself (re-exports are followed as imports). */
function exportsOf(file) {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true)
  const out = []
  const line = (node) => sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1
  for (const st of sf.statements) {
    const mods = ts.canHaveModifiers(st) ? (ts.getModifiers(st) ?? []) : []
    const exported = mods.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
    const isDefault = mods.some((m) => m.kind === ts.SyntaxKind.DefaultKeyword)
    if (exported && isDefault) out.push(['default', line(st)])
    else if (exported && ts.isVariableStatement(st)) {
      for (const d of st.declarationList.declarations) if (ts.isIdentifier(d.name)) out.push([d.name.text, line(d)])
    } else if (exported && st.name && ts.isIdentifier(st.name)) out.push([st.name.text, line(st)])
    else if (ts.isExportAssignment(st)) out.push(['default', line(st)])
    else if (
      ts.isExportDeclaration(st) &&
      !st.moduleSpecifier &&
      st.exportClause &&
      ts.isNamedExports(st.exportClause)
    ) {
      for (const el of st.exportClause.elements) out.push([el.name.text, line(el)])
    }
  }
  return out
}

const importers = [...walk(packagesDir), ...walk(join(root, 'test'))]
const used = new Map() // file -> Set of names, or '*'
const markUsed = (file, names) => {
  if (names === '*') return used.set(file, '*')
  const set = used.get(file) ?? new Set()
  if (set === '*') return
  for (const n of names) set.add(n)
  used.set(file, set)
}
for (const file of importers) {
  for (const { spec, names } of importsOf(file)) {
    const target = resolveSpec(spec, file)
    if (target && target !== file) markUsed(target, names)
  }
}
for (const entry of entries) markUsed(entry, '*')

const unused = []
for (const file of packages.flatMap((p) => walk(join(packagesDir, p, 'src')))) {
  if (/\.test\.[mc]?[jt]s$/.test(file)) continue
  const names = used.get(file)
  if (names === '*') continue
  for (const [name, line] of exportsOf(file)) {
    if (!names?.has(name)) unused.push({ key: `${relative(root, file)}: ${name}`, line })
  }
}

const fresh = unused.filter((u) => !known.has(u.key))
const stillUnused = new Set(unused.map((u) => u.key))
const stale = [...known].filter((k) => !stillUnused.has(k))
if (fresh.length > 0) {
  console.error('unused exports (import them, drop the export, or delete the code):')
  for (const u of fresh) console.error(`  ${u.key.replace(': ', `:${u.line}: `)}`)
}
if (stale.length > 0) {
  console.error(`no longer unused or gone, remove from ${knownFile}:`)
  for (const k of stale) console.error(`  ${k}`)
}
if (fresh.length > 0 || stale.length > 0) process.exit(1)
console.log(`unused exports: none new (${known.size} known, listed in ${knownFile ?? 'no file'})`)
