// Copies the built browser files of the front-end libraries, with their licences, from
// web/node_modules into crates/server/static/vendor/<lib>/, so that the Rust server serves
// everything itself (no CDN, no bundler, nothing fetched at run time).
//
//   cd web && npm ci && node vendor.mjs
//
// Each library's folder is emptied and rewritten, so running the script again after an upgrade
// leaves exactly the files listed here. vendor/manifest.json records the version and SHA-256 of
// every file copied, so a review can see what changed.

import { createHash } from 'node:crypto'
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, normalize, posix, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const modules = join(here, 'node_modules')
const vendor = join(here, '..', 'crates', 'server', 'static', 'vendor')

/** The relative imports of an ES module's source (`import … from './x.js'`, `export … from`). */
function relativeImports (source) {
  const found = new Set()
  const re = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|(?:^|[\s;])import\s*['"](\.{1,2}\/[^'"]+)['"]/gm
  for (const m of source.matchAll(re)) found.add(m[1] ?? m[2])
  return [...found]
}

/**
 * Every file an ES module entry point needs, following its relative imports, as paths relative
 * to the package folder. A bare import (another package, a Node built-in) is an error: the
 * browser could not resolve it.
 */
function esmClosure (pkgDir, entry) {
  const seen = new Set()
  const todo = [entry]
  while (todo.length > 0) {
    const file = todo.pop()
    if (seen.has(file)) continue
    seen.add(file)
    // Comments are dropped first: documentation examples show bare imports.
    const source = readFileSync(join(pkgDir, file), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/^\s*\/\/.*$/gm, '')
    const bare = source.match(/(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^./'"][^'"]*)['"]/m)
    if (bare) throw new Error(`${file} imports the bare specifier ${bare[1]}, which a browser cannot resolve`)
    for (const spec of relativeImports(source)) {
      todo.push(posix.normalize(posix.join(posix.dirname(file), spec)))
    }
  }
  return [...seen].sort()
}

/** The leading comment block of a file, for a library that states its licence only there. */
function headerComment (path) {
  const lines = readFileSync(path, 'utf8').split('\n')
  const end = lines.findIndex((l) => !l.startsWith('//'))
  return lines.slice(0, end).join('\n') + '\n'
}

// What each library contributes. `files` maps a path in the package to a path in vendor/<lib>/.
const libraries = [
  {
    // CBOR for hc1.js. cborg ships plain ES modules (no bundle): the entry point and the files
    // it imports, with the folder layout kept so the relative imports resolve.
    name: 'cborg',
    files: () => esmClosure(join(modules, 'cborg'), 'cborg.js').map((f) => [f, f]),
    licence: [['LICENSE', 'LICENSE']]
  },
  {
    // QR drawing for qrdraw.js: the ES-module build.
    name: 'qrcode-generator',
    files: () => [['dist/qrcode.mjs', 'qrcode.mjs']],
    // The package has no licence file; its MIT licence is stated in the header of its sources.
    licence: [],
    writeLicence: (pkgDir) =>
      '## qrcode-generator licence\n\nThe package ships no licence file. Its package.json says "MIT" and its\n' +
      'sources open with this header, copied verbatim from dist/qrcode.js:\n\n' +
      headerComment(join(pkgDir, 'dist', 'qrcode.js'))
  },
  {
    // QR decoding for the scanner page. jsQR ships only a UMD build (no ES module): loaded as a
    // module in a browser it sets globalThis.jsQR; under Node it is CommonJS. qrdraw.js handles both.
    name: 'jsqr',
    files: () => [['dist/jsQR.js', 'jsQR.js']],
    licence: [['LICENSE', 'LICENSE']]
  },
  {
    // Charts for the officer console: the single-file UMD build, loaded with a plain <script>
    // (it defines window.Chart). It bundles @kurkle/color, whose licence is copied too.
    name: 'chart.js',
    files: () => [['dist/chart.umd.js', 'chart.umd.js']],
    licence: [
      ['LICENSE.md', 'LICENSE.md'],
      ['../@kurkle/color/LICENSE.md', 'LICENSE-kurkle-color.md']
    ]
  }
]

const manifest = {}
for (const lib of libraries) {
  const pkgDir = join(modules, lib.name)
  if (!existsSync(pkgDir)) {
    throw new Error(`${lib.name} is not installed: run "npm ci" in web/ first`)
  }
  const version = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version
  const dest = join(vendor, lib.name)
  rmSync(dest, { recursive: true, force: true })
  const entries = [...lib.files(), ...lib.licence]
  const files = {}
  for (const [from, to] of entries) {
    const target = normalize(join(dest, to))
    if (!target.startsWith(dest)) throw new Error(`${to} would land outside ${lib.name}'s folder`)
    mkdirSync(dirname(target), { recursive: true })
    copyFileSync(join(pkgDir, from), target)
  }
  if (lib.writeLicence) {
    writeFileSync(join(dest, 'LICENSE'), lib.writeLicence(pkgDir))
    entries.push([null, 'LICENSE'])
  }
  for (const [, to] of entries.sort((a, b) => a[1].localeCompare(b[1]))) {
    const bytes = readFileSync(join(dest, to))
    files[to] = { bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }
  }
  manifest[lib.name] = { version, files }
  const total = Object.values(files).reduce((n, f) => n + f.bytes, 0)
  console.log(`${lib.name} ${version}: ${Object.keys(files).length} files, ${total} bytes → ${relative(join(here, '..'), dest)}`)
}
writeFileSync(join(vendor, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n')
