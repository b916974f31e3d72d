// Checks qrdraw.js under Node: every valid test-vector code becomes a QR at level M in
// alphanumeric mode of the version the specification states (version 8 for the 212-character
// `valid-yellow` code, at most version 9 for any code), and reading the symbol back with jsQR
// from a rendered bitmap gives the same text, at a few module sizes.
//
//   node web/tests/qr.mjs

import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { DEFAULT_MARGIN, decodeImageData, qrMatrix } from '../../crates/server/static/js/qrdraw.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const file = JSON.parse(readFileSync(join(root, 'testdata', 'vectors', 'vectors.json'), 'utf8'))

/** The symbol as RGBA pixels, `scale` pixels a module, with the standard quiet zone. */
function render (matrix, scale) {
  const side = (matrix.size + 2 * DEFAULT_MARGIN) * scale
  const data = new Uint8ClampedArray(side * side * 4).fill(255)
  for (let row = 0; row < matrix.size; row++) {
    for (let col = 0; col < matrix.size; col++) {
      if (!matrix.isDark(row, col)) continue
      for (let y = 0; y < scale; y++) {
        for (let x = 0; x < scale; x++) {
          const at = (((row + DEFAULT_MARGIN) * scale + y) * side + (col + DEFAULT_MARGIN) * scale + x) * 4
          data[at] = data[at + 1] = data[at + 2] = 0
        }
      }
    }
  }
  return { data, width: side, height: side }
}

let passed = 0
const failures = []
for (const v of file.vectors.filter((v) => v.expected.valid)) {
  const matrix = qrMatrix(v.token)
  const wanted = v.name === 'valid-yellow' ? matrix.version === 8 : matrix.version <= 9
  if (matrix.mode === 'Alphanumeric' && wanted) passed++
  else failures.push(`${v.name}: ${matrix.mode} mode, version ${matrix.version}`)
  for (const scale of [2, 3, 5]) {
    const text = decodeImageData(render(matrix, scale))
    if (text === v.token) passed++
    else failures.push(`${v.name} at ${scale} px a module: read ${JSON.stringify(text)}`)
  }
}
const blank = decodeImageData({ data: new Uint8ClampedArray(64 * 64 * 4).fill(255), width: 64, height: 64 })
if (blank === null) passed++
else failures.push(`a blank image read as ${JSON.stringify(blank)}`)

for (const f of failures) console.error(`FAIL ${f}`)
console.log(`qr: ${passed} passed, ${failures.length} failed`)
process.exit(failures.length > 0 ? 1 : 0)
