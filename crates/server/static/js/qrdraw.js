// qrdraw.js: draws a holder code's QR and decodes QR codes from camera frames or images.
//
// Drawing uses the vendored qrcode-generator at error-correction level M, in alphanumeric mode
// for an `HC1:` text (docs/token-format.md §2: every character is in the QR alphanumeric set),
// and byte mode for any other text. The code is drawn as inline SVG: one <path> of whole modules
// in a viewBox measured in modules, with crisp edges, so it stays sharp at any size (a phone
// screen, a zoomed page, a print) and a screenshot of it decodes. Without `moduleSize` the SVG
// fills the width of its container (style the container to size it); with `moduleSize` it is
// that many CSS pixels per module.
//
// Decoding wraps the vendored jsQR. jsQR ships only a UMD build: loaded as an ES module in a
// browser it defines globalThis.jsQR, and under Node it is a CommonJS module whose default
// export is the function; both are handled below.

import qrcode from '../vendor/qrcode-generator/qrcode.mjs'
import * as jsqrModule from '../vendor/jsqr/jsQR.js'

const jsQR = typeof jsqrModule.default === 'function' ? jsqrModule.default : globalThis.jsQR

const SVG_NS = 'http://www.w3.org/2000/svg'
const ALPHANUMERIC = /^[0-9A-Z $%*+\-./:]*$/
/** The quiet zone the QR standard asks for, in modules. */
export const DEFAULT_MARGIN = 4

/**
 * The QR symbol for `text` at level M: `{ size, version, mode, isDark(row, col) }`, where `size`
 * is the number of modules on a side (without margin) and `version` the QR version (1–40).
 */
export function qrMatrix (text) {
  const mode = ALPHANUMERIC.test(text) ? 'Alphanumeric' : 'Byte'
  const qr = qrcode(0, 'M')
  qr.addData(text, mode)
  qr.make()
  const size = qr.getModuleCount()
  return { size, version: (size - 17) / 4, mode, isDark: (row, col) => qr.isDark(row, col) }
}

/** The SVG path data of the dark modules, one unit per module, offset by `margin`. */
function pathData (matrix, margin) {
  const parts = []
  for (let row = 0; row < matrix.size; row++) {
    // Runs of dark modules in a row become one rectangle each.
    let col = 0
    while (col < matrix.size) {
      if (!matrix.isDark(row, col)) {
        col++
        continue
      }
      const start = col
      while (col < matrix.size && matrix.isDark(row, col)) col++
      parts.push(`M${start + margin} ${row + margin}h${col - start}v1h${start - col}z`)
    }
  }
  return parts.join('')
}

/**
 * Draws the QR of `text` into `container` (any element) as an inline SVG, replacing what the
 * container held, and returns the <svg> element. Dark modules are black on a white quiet zone of
 * `margin` modules (default 4), whatever the page's colours, so that scanners read it. The SVG is
 * an image whose accessible name is `label` (pass it in the page's language).
 */
export function drawQr (container, text, { moduleSize, margin = DEFAULT_MARGIN, label = 'QR code' } = {}) {
  const matrix = qrMatrix(text)
  const side = matrix.size + 2 * margin
  const doc = container.ownerDocument
  const svg = doc.createElementNS(SVG_NS, 'svg')
  svg.setAttribute('viewBox', `0 0 ${side} ${side}`)
  svg.setAttribute('shape-rendering', 'crispEdges')
  svg.setAttribute('role', 'img')
  svg.setAttribute('aria-label', label)
  svg.setAttribute('data-qr-version', String(matrix.version))
  if (moduleSize) {
    svg.setAttribute('width', String(side * moduleSize))
    svg.setAttribute('height', String(side * moduleSize))
  } else {
    svg.setAttribute('width', '100%')
    svg.style.display = 'block'
    svg.style.height = 'auto'
  }
  const background = doc.createElementNS(SVG_NS, 'rect')
  background.setAttribute('width', String(side))
  background.setAttribute('height', String(side))
  background.setAttribute('fill', '#fff')
  const modules = doc.createElementNS(SVG_NS, 'path')
  modules.setAttribute('d', pathData(matrix, margin))
  modules.setAttribute('fill', '#000')
  svg.append(background, modules)
  container.replaceChildren(svg)
  return svg
}

/**
 * Decodes a QR code in an ImageData (or any `{ data, width, height }` with RGBA bytes, such as a
 * camera frame drawn on a canvas). Returns the text, or null when no code is found.
 * `inversionAttempts` is passed to jsQR: 'dontInvert' is fastest for a camera loop; the default
 * also tries light-on-dark codes.
 */
export function decodeImageData (imageData, { inversionAttempts = 'attemptBoth' } = {}) {
  const { data, width, height } = imageData
  const rgba = data instanceof Uint8ClampedArray ? data : new Uint8ClampedArray(data.buffer, data.byteOffset, data.byteLength)
  const found = jsQR(rgba, width, height, { inversionAttempts })
  return found ? found.data : null
}
