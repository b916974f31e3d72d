// The web interface, driven in Debian's Chromium by Playwright, against a running
// `healthcode demo` (started by the Rust test crates/cli/tests/browser.rs, which passes):
//   HC_BASE       the server's address (http://127.0.0.1:PORT)
//   HC_DEMO_JSON  the demo's demo.json (staff one-time passwords, device keys)
//   HC_LOG        the server's log, where the console SMS adapter writes one-time codes
//   HC_SHOTS      the folder for screenshots (every page at 360×640 and 1280×800)
//   HC_CHROMIUM   the browser (default /usr/bin/chromium)
//
// The story: a resident the demo's registry knows registers and sees a green code; the scanner page reads that QR from a
// picture and shows green; it keeps verifying with the network cut (also after a reload) and
// uploads its queue when the network returns; a second resident is scanned at the same venue and
// confirmed as a case by an officer, who first registers a third resident at the service counter
// (who then signs in with the phone), and runs tracing and, as the policy here asks for review,
// applies one exposure and dismisses the other; the first resident's page turns yellow with the
// reason; the language switch works; then risk areas, appeals, a two-officer override, venues
// and devices, printed codes, posters, the audit log, and a scan from a (fake) camera. Every page is checked with axe-core (no serious or critical violation)
// and must raise no content-security-policy violation or script error. Each staff member's first
// sign-in replaces the issued password and enrols an authenticator app (TOTP).
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import { qrMatrix } from '../../crates/server/static/js/qrdraw.js'

const require = createRequire(import.meta.url)
const BASE = process.env.HC_BASE
const demo = JSON.parse(readFileSync(process.env.HC_DEMO_JSON, 'utf8'))
const LOG = process.env.HC_LOG
const SHOTS = process.env.HC_SHOTS
mkdirSync(SHOTS, { recursive: true })
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8')

const MOBILE = { width: 360, height: 640 }
const DESKTOP = { width: 1280, height: 800 }
const failures = []
let steps = 0

function step (what) {
  steps++
  console.log(`· ${what}`)
}

// ---- helpers -----------------------------------------------------------------------------------

/** A valid 18-character resident ID (GB 11643 check character) from 17 digits. */
function residentId (first17) {
  const w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
  const sum = [...first17].reduce((s, d, i) => s + Number(d) * w[i], 0)
  return first17 + '10X98765432'[sum % 11]
}

/** Waits for the one-time code the console SMS adapter logged for a phone ending in `last4`. */
async function otpFor (last4, after) {
  const re = new RegExp(`one-time code for \\+\\d*\\**${last4}: (\\d{6})`, 'g')
  for (let i = 0; i < 100; i++) {
    const log = readFileSync(LOG, 'utf8').replace(/\x1b\[[0-9;]*m/g, '')
    const found = [...log.slice(after).matchAll(re)]
    if (found.length) return found.at(-1)[1]
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`no one-time code for …${last4} in the log`)
}

function logLength () {
  return readFileSync(LOG, 'utf8').replace(/\x1b\[[0-9;]*m/g, '').length
}

/** A page that records script errors and CSP violations as failures. */
async function watched (context, name) {
  const page = await context.newPage()
  page.on('pageerror', (e) => failures.push(`${name}: script error: ${e.message}`))
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource|ERR_INTERNET_DISCONNECTED|net::/.test(m.text())) {
      failures.push(`${name}: console error: ${m.text()}`)
    }
  })
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`)
    })
  })
  return page
}

/** axe-core on the page as it is: no serious or critical violation. */
async function accessible (page, name) {
  await page.evaluate(axeSource)
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] })
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help, target: v.nodes[0]?.target }))
  })
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical')
  for (const v of bad) failures.push(`${name}: axe ${v.impact} ${v.id} (${v.nodes}×, e.g. ${JSON.stringify(v.target)}): ${v.help}`)
}

/** Screenshots at both sizes, and the accessibility check at each. */
async function record (page, name) {
  for (const [label, size] of [['360x640', MOBILE], ['1280x800', DESKTOP]]) {
    await page.setViewportSize(size)
    await page.waitForTimeout(150)
    await page.screenshot({ path: join(SHOTS, `${name}-${label}.png`), fullPage: true })
    await accessible(page, `${name} at ${label}`)
  }
}

/**
 * A Y4M video (one 640×480 frame, which Chromium's fake camera repeats) showing the QR of
 * `text` at 8 pixels a module on white: what a camera pointed at a phone sees, without glare.
 */
function qrVideo (text, path) {
  const [w, h, px] = [640, 480, 8]
  const m = qrMatrix(text)
  const side = (m.size + 8) * px
  const [x0, y0] = [(w - side) / 2, (h - side) / 2]
  const y = Buffer.alloc(w * h, 255)
  for (let r = 0; r < m.size; r++) {
    for (let c = 0; c < m.size; c++) {
      if (!m.isDark(r, c)) continue
      for (let dy = 0; dy < px; dy++) {
        const row = y0 + (r + 4) * px + dy
        y.fill(0, row * w + x0 + (c + 4) * px, row * w + x0 + (c + 5) * px)
      }
    }
  }
  const chroma = Buffer.alloc((w / 2) * (h / 2) * 2, 128)
  writeFileSync(path, Buffer.concat([Buffer.from(`YUV4MPEG2 W${w} H${h} F10:1 Ip A1:1 C420jpeg\nFRAME\n`), y, chroma]))
  assert.ok(side <= h, 'the code fits in the frame')
}

/** The six-digit TOTP code (RFC 6238, SHA-1, 30 s) an authenticator app shows for a base32 key. */
function totp (base32, at = Date.now()) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let bits = ''
  for (const ch of base32.replace(/=+$/, '')) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0')
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)))
  const counter = Buffer.alloc(8)
  counter.writeBigInt64BE(BigInt(Math.floor(at / 30000)))
  const d = createHmac('sha1', key).update(counter).digest()
  const o = d[19] & 15
  const n = ((d[o] & 0x7f) << 24) | (d[o + 1] << 16) | (d[o + 2] << 8) | d[o + 3]
  return String(n % 1000000).padStart(6, '0')
}

/**
 * An account's first sign-in: the issued password is refused until a new one is chosen; then the
 * second factor is enrolled (the app's key read off the page, its code computed here as a phone
 * would), and the recovery codes are shown once before going on.
 */
async function firstSignIn (page, account, newPassword, landing, name) {
  await page.fill('#username', account.username)
  await page.fill('#password', account.one_time_password)
  await page.click('#staff-signin button[type=submit]')
  await page.waitForSelector('#new-password-box:not([hidden])')
  await page.fill('#new_password', newPassword)
  await Promise.all([page.waitForURL(/\/console\/enrol/), page.click('#staff-signin button[type=submit]')])
  await page.click('#enrol-start')
  await page.waitForSelector('#enrol-secret:not([hidden])')
  assert.ok(await page.locator('#enrol-qr svg').count() === 1, 'no QR code to scan')
  const key = (await page.textContent('#enrol-text')).trim()
  if (name) await record(page, `${name}-scan`)
  await page.fill('#enrol-code', totp(key))
  await page.click('#enrol-confirm button[type=submit]')
  await page.waitForSelector('#enrol-done:not([hidden])')
  assert.equal(await page.locator('#enrol-recovery li').count(), 10, 'ten recovery codes')
  if (name) await record(page, `${name}-recovery`)
  await Promise.all([page.waitForURL(BASE + landing), page.click('#enrol-continue')])
}

async function visit (page, path, name) {
  const res = await page.goto(BASE + path)
  assert.equal(res.status(), 200, `${path} answered ${res.status()}`)
  await page.waitForLoadState('networkidle')
  if (name) await record(page, name)
}

// ---- the story ---------------------------------------------------------------------------------

const browser = await chromium.launch({
  executablePath: process.env.HC_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--no-first-run'],
})

try {
  const ctxOpts = { viewport: MOBILE, locale: 'en-GB', timezoneId: 'Asia/Shanghai' }

  // Public pages.
  const visitor = await browser.newContext(ctxOpts)
  const pub = await watched(visitor, 'public')
  step('public pages')
  await visit(pub, '/', 'start')
  // The accessibility check can fail: an image without a text alternative is reported.
  await pub.evaluate(() => {
    const img = document.createElement('img')
    img.src = '/static/icon.svg'
    img.id = 'axe-self-check'
    document.querySelector('main').append(img)
  })
  const before = failures.length
  await accessible(pub, 'self-check')
  assert.ok(failures.slice(before).some((f) => f.includes('image-alt')), 'axe reports a missing alt text')
  failures.length = before
  await pub.evaluate(() => document.getElementById('axe-self-check').remove())
  await visit(pub, '/policy', 'policy')
  await visit(pub, '/signin', 'signin')
  await visit(pub, '/console/signin', 'console-signin')
  // A holder page without a session leads to sign-in, and back after it.
  await pub.goto(BASE + '/me/access-log')
  assert.match(pub.url(), /\/signin\?next=%2Fme%2Faccess-log$/)

  // Resident A registers.
  step('resident A registers and sees a green code')
  const ctxA = await browser.newContext(ctxOpts)
  const a = await watched(ctxA, 'resident A')
  await visit(a, '/register', 'register')
  // The demo's registry knows these people and no one registered them yet.
  const [personA, personB] = demo.unregistered.filter((p) => p.document.type === 'resident-id')
  const idA = personA.document.number
  await a.fill('#name', personA.name)
  await a.fill('#resident_id', idA)
  await a.fill('#phone', personA.phone)
  let mark = logLength()
  await a.click('#send-otp')
  await a.waitForSelector('#register .status:has-text("sent")')
  await a.fill('#otp', await otpFor(personA.phone.slice(-4), mark))
  await Promise.all([a.waitForURL(BASE + '/me'), a.click('#register button[type=submit]')])
  assert.equal(await a.getAttribute('#code', 'data-colour'), 'green')
  assert.equal(await a.textContent('[data-test=colour]'), 'Green')
  await a.waitForSelector('#qr svg')
  assert.match(await a.textContent('[data-test=no-reasons]'), /No rule applies/)
  await record(a, 'my-code-green')
  const qrA = join(SHOTS, 'qr-resident-a.png')
  await a.setViewportSize(MOBILE)
  await a.locator('#qr').screenshot({ path: qrA })
  // With the network down, the code page opens from the phone's copy with the saved code.
  await a.evaluate(() => navigator.serviceWorker.ready)
  await a.reload()
  await a.waitForFunction(() => navigator.serviceWorker.controller !== null)
  await ctxA.setOffline(true)
  await a.reload()
  assert.equal(await a.getAttribute('#code', 'data-colour'), 'green')
  await a.waitForSelector('#qr svg')
  await a.waitForSelector('#offline:not([hidden])', { timeout: 20000 })
  await a.screenshot({ path: join(SHOTS, 'my-code-offline-360x640.png') })
  await ctxA.setOffline(false)

  // The venue scanner at the mall (green codes only).
  step('the scanner reads the green code from a picture')
  const mall = demo.devices.find((d) => d.venue === 1) || demo.devices[0]
  const ctxS = await browser.newContext({ ...ctxOpts, viewport: DESKTOP })
  const s = await watched(ctxS, 'scanner')
  await visit(s, '/scan', 'scanner-setup')
  await s.fill('#device-key', mall.key)
  await s.click('#setup button[type=submit]')
  await s.waitForSelector('#door:not([hidden])')
  await s.waitForSelector('[data-test=trust-state].ok')
  await record(s, 'scanner')
  await s.setInputFiles('#image-input', qrA)
  await s.waitForSelector('[data-test=result]:not([hidden])')
  assert.equal(await s.getAttribute('[data-test=result]', 'data-colour'), 'green')
  assert.equal(await s.getAttribute('[data-test=result]', 'data-decision'), 'admit')
  await record(s, 'scanner-result-green')
  await s.click('#result-close')
  await s.waitForSelector('[data-test=queue-state].ok')

  // The network goes down: the scanner keeps verifying and queues.
  step('the scanner verifies offline and uploads its queue when back')
  await ctxS.setOffline(true)
  // Check-in times are kept to the second: a scan in the same second as the previous one would be
  // the same presence, so the next scans wait for a new second.
  await s.waitForTimeout(1100)
  await s.setInputFiles('#image-input', qrA)
  await s.waitForSelector('[data-test=result]:not([hidden])')
  assert.equal(await s.getAttribute('[data-test=result]', 'data-decision'), 'admit')
  await s.click('#result-close')
  // A forged code is refused offline too.
  await s.fill('#token-input', 'HC1:AAAAAAAA')
  await s.press('#token-input', 'Enter')
  await s.waitForSelector('[data-test=result]:not([hidden])')
  assert.equal(await s.getAttribute('[data-test=result]', 'data-colour'), 'invalid')
  await s.click('#result-close')
  await s.waitForSelector('[data-test=queue-state].warn')
  assert.match(await s.textContent('[data-test=queue-state]'), /Waiting to upload: 1/)
  assert.match(await s.textContent('[data-test=net-state]'), /Offline/)
  await s.screenshot({ path: join(SHOTS, 'scanner-offline-1280x800.png') })
  // Reloaded while offline, the page comes from the phone's copy and keeps working.
  await s.waitForTimeout(1100)
  await s.evaluate(() => navigator.serviceWorker.ready)
  await s.reload()
  await s.waitForSelector('#door:not([hidden])')
  await s.waitForSelector('[data-test=trust-state].ok')
  await s.setInputFiles('#image-input', qrA)
  await s.waitForSelector('[data-test=result]:not([hidden])')
  assert.equal(await s.getAttribute('[data-test=result]', 'data-decision'), 'admit')
  await s.click('#result-close')
  assert.match(await s.textContent('[data-test=queue-state]'), /Waiting to upload: 2/)
  await ctxS.setOffline(false)
  await s.waitForSelector('[data-test=queue-state].ok', { timeout: 15000 })

  // Resident B registers and is scanned at the mall too.
  step('resident B registers and is scanned at the same venue')
  const ctxB = await browser.newContext(ctxOpts)
  const b = await watched(ctxB, 'resident B')
  await b.goto(BASE + '/register')
  const idB = personB.document.number
  await b.fill('#name', personB.name)
  await b.fill('#resident_id', idB)
  await b.fill('#phone', personB.phone)
  mark = logLength()
  await b.click('#send-otp')
  await b.waitForSelector('#register .status:has-text("sent")')
  await b.fill('#otp', await otpFor(personB.phone.slice(-4), mark))
  await Promise.all([b.waitForURL(BASE + '/me'), b.click('#register button[type=submit]')])
  await b.waitForSelector('#qr svg')
  const qrB = join(SHOTS, 'qr-resident-b.png')
  await b.locator('#qr').screenshot({ path: qrB })
  await s.setInputFiles('#image-input', qrB)
  await s.waitForSelector('[data-test=result]:not([hidden])')
  assert.equal(await s.getAttribute('[data-test=result]', 'data-decision'), 'admit')
  await s.click('#result-close')
  await s.waitForSelector('[data-test=queue-state].ok', { timeout: 15000 })

  // The officer signs in (replacing the issued password), finds B, records the case and traces.
  step('an officer records a case and runs tracing')
  const officer = demo.accounts.find((x) => x.role === 'officer')
  const ctxO = await browser.newContext({ ...ctxOpts, viewport: DESKTOP })
  const o = await watched(ctxO, 'officer')
  await o.goto(BASE + '/console')
  await o.waitForURL(/\/console\/signin/)
  await firstSignIn(o, officer, 'a long new password 1', '/console', 'console-enrol')
  // A second officer records the labs' reports (a record opens no one's data to whoever made
  // it) and approves what the first proposes.
  const second = demo.accounts.find((x) => x.role === 'officer' && x.username !== officer.username)
  const ctxW = await browser.newContext({ ...ctxOpts, viewport: DESKTOP })
  const w = await watched(ctxW, 'second officer')
  await w.goto(BASE + '/console/signin')
  await firstSignIn(w, second, 'a third long password 3', '/console')

  // At the service counter the officer registers a resident the registry knows, with the ID card
  // in hand and the code the resident reads out from the phone; the resident then signs in with
  // the phone's one-time code.
  step('an officer registers a resident at the counter, who then signs in')
  await visit(o, '/console/counter', 'console-counter')
  const personC = demo.unregistered.filter((p) => p.document.type === 'resident-id')[2]
  const phoneC = personC.phone
  await o.fill('#r-name', personC.name)
  await o.fill('#r-id', personC.document.number)
  await o.fill('#r-phone', phoneC)
  mark = logLength()
  await o.click('#r-send')
  await o.waitForSelector('#counter-resident .status:has-text("sent")')
  await o.fill('#r-otp', await otpFor(phoneC.slice(-4), mark))
  await o.click('#counter-resident button[type=submit]')
  await o.waitForSelector('#counter-resident .status.error')
  await o.check('#r-seen')
  await o.check('#r-checked')
  await o.click('#counter-resident button[type=submit]')
  await o.waitForSelector('[data-test=counter-registered] dd')
  assert.match(await o.locator('[data-test=counter-registered] dt:has-text("holder") + dd').textContent(), /^[0-9a-f]{16,32}$/)
  // The demo lets a phone have a new code five seconds after the last.
  await new Promise((resolve) => setTimeout(resolve, 5200))
  const ctxC = await browser.newContext(ctxOpts)
  const c = await watched(ctxC, 'resident C')
  await c.goto(BASE + '/signin')
  await c.fill('#phone', phoneC)
  mark = logLength()
  await c.click('#send-otp')
  await c.waitForSelector('#signin .status:has-text("sent")')
  await c.fill('#otp', await otpFor(phoneC.slice(-4), mark))
  await Promise.all([c.waitForURL(BASE + '/me'), c.click('#signin button[type=submit]')])
  assert.equal(await c.getAttribute('#code', 'data-colour'), 'green')
  await ctxC.close()

  // The lab's report arrives first (the second officer records it): its reference then reaches
  // B only, for the first officer.
  await visit(o, '/console/cases')
  await visit(w, '/console/cases')
  await w.fill('#l-ref', 'LAB-2026-1129-07')
  await w.fill('#l-lab', 'Zhejiang CDC')
  await w.fill('#l-resident', idB)
  await w.click('form[data-api$="admin/lab-reports"] button[type=submit]')
  await w.waitForSelector('form[data-api$="admin/lab-reports"] .status:not(:empty)')
  await o.fill('#s-name', personB.name)
  await o.fill('#s-resident', idB)
  await o.fill('#s-ref', 'LAB-2026-1129-07')
  await o.click('form[data-api$="holders/search"] button[type=submit]')
  await o.waitForSelector('[data-test=found] dd')
  const holderB = await o.locator('[data-test=found] dt:has-text("holder") + dd').textContent()
  assert.match(holderB, /^[0-9a-f]{16,32}$/)
  await o.fill('#c-holder', holderB)
  const onset = new Date(Date.now() - 24 * 3600 * 1000)
  const local = new Date(onset.getTime() + 8 * 3600 * 1000).toISOString().slice(0, 16)
  await o.fill('#c-onset', local)
  await Promise.all([o.waitForEvent('load'), o.click('form[data-api$="admin/cases"] button[type=submit]')])
  await o.waitForSelector('[data-test=cases] tbody tr')
  const traceButton = o.locator('[data-test=cases] tbody tr').first().locator('button[data-post]')
  await traceButton.click()
  await o.waitForSelector('[data-test=cases] tbody tr .status:has-text("ms")')
  await record(o, 'console-cases')
  const caseId = await o.locator('[data-test=cases] tbody tr td').first().textContent()
  await visit(o, `/console/cases/${caseId}`, 'console-case')
  assert.ok(await o.locator('[data-test=exposures] tbody tr').count() >= 1, 'the case has exposures')

  // The policy asks for review: A stays green until an officer applies an exposure. A was
  // scanned at the mall three times while B was there (online, offline, offline after a reload):
  // all three reached the server, each is an exposure; one is applied, the others dismissed.
  step('the officer reviews the exposures: one applied, two dismissed')
  await a.reload()
  assert.equal(await a.getAttribute('#code', 'data-colour'), 'green')
  const holderA = (await a.evaluate(() => fetch('/api/v1/me/export').then((r) => r.json()))).holder
  await visit(o, '/console/cases')
  const pendingA = () => o.locator('[data-test=exposures] tbody tr', { hasText: holderA })
  assert.equal(await pendingA().count(), 3)
  await record(o, 'console-exposure-review')
  await pendingA().first().locator('input[name=note]').fill('Same hour at the same entrance.')
  await Promise.all([o.waitForEvent('load'), pendingA().first().locator('button[value=true]').click()])
  for (const left of [2, 1]) {
    assert.equal(await pendingA().count(), left)
    await pendingA().first().locator('input[name=note]').fill('The same visit, scanned again.')
    await Promise.all([o.waitForEvent('load'), pendingA().first().locator('button[value=false]').click()])
  }
  assert.equal(await pendingA().count(), 0)

  // A's page turns yellow, with the reason.
  step("the contact's page turns yellow with the reason")
  await a.reload()
  assert.equal(await a.getAttribute('#code', 'data-colour'), 'yellow')
  assert.equal(await a.textContent('[data-test=colour]'), 'Yellow')
  const reasons = await a.textContent('[data-test=reasons]')
  assert.match(reasons, /Yellow/)
  assert.match(await a.textContent('[data-test=green-at]'), /Turns green on/)
  await record(a, 'my-code-yellow')

  // The language switch.
  step('the language switch')
  await Promise.all([a.waitForURL(BASE + '/me'), a.click('[data-test=lang-switch]')])
  assert.equal(await a.getAttribute('html', 'lang'), 'zh-CN')
  assert.equal(await a.textContent('[data-test=colour]'), '黄码')
  assert.match(await a.textContent('[data-test=reasons]'), /与病例同时处于同一场所/)
  await record(a, 'my-code-yellow-zh')
  await Promise.all([a.waitForURL(BASE + '/me'), a.click('[data-test=lang-switch]')])
  assert.equal(await a.textContent('[data-test=colour]'), 'Yellow')

  // The rest of the holder's pages.
  step("the holder's other pages")
  await visit(a, '/me/reports', 'reports')
  await a.click('form[data-api$="me/reports"] button[type=submit]')
  await a.waitForSelector('form[data-api$="me/reports"] .status:has-text("Done")')
  await visit(a, '/me/appeals', 'appeals')
  await a.fill('#text', 'I was at the mall for ten minutes only, far from the entrance.')
  await Promise.all([a.waitForEvent('load'), a.click('form[data-api$="me/appeals"] button[type=submit]')])
  await a.waitForSelector('[data-test=appeals] li')
  await visit(a, '/me/export', 'export')
  await visit(a, '/me/access-log', 'access-log')

  // The rest of the console.
  step("the console's other pages")
  await visit(o, '/console', 'console-dashboard')
  assert.ok(Number(await o.textContent('[data-test=tiles] .yellow .n')) >= 1, 'a yellow holder is counted')

  // A risk area.
  await visit(o, '/console/areas')
  await o.fill('#a-region', 'CN-HB')
  await o.selectOption('#a-level', 'high')
  await o.fill('#a-from', new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 16))
  await Promise.all([o.waitForEvent('load'), o.click('form[data-api$="risk-areas"] button[type=submit]')])
  // A risk area is a proposal: listed as awaiting a second officer, declared once one approves.
  await o.waitForSelector('[data-test=pending-areas] li:has-text("CN-HB")')
  assert.equal(await o.locator('[data-test=areas] li', { hasText: 'High' }).count(), 0)
  await record(o, 'console-areas')
  // Every pending proposal of any kind, the area among them (its proposer may only withdraw it),
  // and the form for a new colour policy version.
  await visit(o, '/console/proposals', 'console-proposals')
  const areaProposal = o.locator('[data-test=proposals] li[data-kind=risk-area-declare]', { hasText: 'CN-HB' })
  assert.equal(await areaProposal.locator('button[data-post$="/withdraw"]').count(), 1)
  assert.match(await o.inputValue('#p-source'), /^# healthcode colour policy/)

  // An appeal answered.
  await visit(o, '/console/appeals', 'console-appeals')
  const appeal = o.locator('[data-test=appeals] li', { hasText: 'ten minutes only' })
  await appeal.locator('input[name=note]').fill('The exposure stands; a negative test ends it.')
  await Promise.all([o.waitForEvent('load'), appeal.locator('button[value=false]').click()])
  assert.equal(await o.locator('[data-test=appeals] li', { hasText: 'ten minutes only' }).count(), 0)
  await visit(a, '/me/appeals')
  assert.match(await a.textContent('[data-test=appeals]'), /Rejected[\s\S]*a negative test ends it/)

  // An override needs a second officer: the proposer cannot approve it, another officer can.
  step('an override, proposed by one officer and approved by another')
  await visit(o, '/console/cases')
  await visit(w, '/console/cases')
  await w.fill('#l-ref', 'LAB-2026-1129-09')
  await w.fill('#l-lab', 'Zhejiang CDC')
  await w.fill('#l-resident', idA)
  await w.click('form[data-api$="admin/lab-reports"] button[type=submit]')
  await w.waitForSelector('form[data-api$="admin/lab-reports"] .status:not(:empty)')
  await o.fill('#s-name', personA.name)
  await o.fill('#s-resident', idA)
  await o.fill('#s-ref', 'LAB-2026-1129-09')
  await o.click('form[data-api$="holders/search"] button[type=submit]')
  await o.waitForSelector('[data-test=found] dd')
  assert.equal(await o.locator('[data-test=found] dt:has-text("holder") + dd').textContent(), holderA)
  await visit(o, '/console/overrides')
  await o.fill('#o-holder', holderA)
  await o.selectOption('#o-colour', 'green')
  await o.fill('#o-reason', 'Negative test on 29 November; the exposure was two minutes at the entrance.')
  await o.fill('#o-expires', new Date(Date.now() + (8 + 48) * 3600 * 1000).toISOString().slice(0, 16))
  await Promise.all([o.waitForEvent('load'), o.click('form[data-api$="admin/overrides"] button[type=submit]')])
  const proposed = o.locator('[data-test=overrides] tbody tr', { hasText: holderA })
  await proposed.locator('button[data-post]').click()
  await proposed.locator('.status.error').waitFor()
  await record(o, 'console-overrides')
  await visit(w, '/console/overrides')
  await Promise.all([
    w.waitForEvent('load'),
    w.locator('[data-test=overrides] tbody tr', { hasText: holderA }).locator('button[data-post]').click(),
  ])
  await w.waitForSelector(`[data-test=overrides] tbody tr:has-text("${holderA}"):has-text("Approved by")`)
  await a.goto(BASE + '/me')
  assert.equal(await a.getAttribute('#code', 'data-colour'), 'green')
  assert.match(await a.textContent('[data-test=reasons]'), /two minutes at the entrance/)
  await record(a, 'my-code-override')
  // The second officer approves the risk area the first proposed.
  await visit(w, '/console/areas')
  await Promise.all([
    w.waitForEvent('load'),
    w.locator('[data-test=pending-areas] li', { hasText: 'CN-HB' }).locator('button[data-post]').click(),
  ])
  await w.waitForSelector('[data-test=areas] li:has-text("CN-HB"):has-text("High")')
  assert.equal(await w.locator('[data-test=pending-areas]').count(), 0)
  await visit(o, '/console/venues', 'console-venues')
  // B gives a consent for a printed code on their page; the officer names it.
  await visit(b, '/me/consents')
  await b.check('input[name=scope][value=printed-code]')
  await b.fill('#days', '1')
  await Promise.all([b.waitForEvent('load'), b.click('form[data-api$="me/consents"] button[type=submit]')])
  const consentB = await b.getAttribute('[data-test=consents] li[data-consent]', 'data-consent')
  assert.match(consentB, /^[0-9]+$/)
  await visit(o, '/console/print', 'console-print')
  await o.fill('#p-name', personB.name)
  await o.fill('#p-resident', idB)
  await o.fill('#p-consent', consentB)
  await o.click('#print-form button[type=submit]')
  await o.waitForSelector('[data-test=printed]:not([hidden]) svg')
  assert.equal(await o.getAttribute('[data-test=printed]', 'data-colour'), 'red')
  await record(o, 'console-printed-code')
  await visit(o, '/console/venues/1/poster', 'console-poster')

  // The printed code shows in B's access log with its consent.
  await visit(b, '/me/access-log')
  assert.match(await b.textContent('[data-test=access-log]'), new RegExp(`printed code with consent \\(consent ${consentB}\\)`))
  assert.match(await b.textContent('[data-test=access-log]'), /lab result \(report LAB-2026-1129-07\)/)
  // And on B's page of what happened: the use of the consent, by whom.
  await visit(b, '/me/notifications')
  assert.match(await b.textContent('[data-test=notifications]'), new RegExp(`consent-use[\\s\\S]*consent ${consentB}`))
  // The page's check ends in one state; a server too busy to answer (unavailable) is tried again,
  // as a holder would reload; any other state is reported as it is.
  const logCheck = async (want) => {
    for (let i = 0; i < 3; i++) {
      await visit(b, '/me/access-log')
      await b.waitForSelector('[data-test=log-check]:not([data-state=checking])', { timeout: 30000 })
      const state = await b.getAttribute('[data-test=log-check]', 'data-state')
      if (state === want) return
      if (state !== 'unavailable') {
        assert.fail(`the access log's check ended ${state}, not ${want}: ${await b.textContent('[data-test=log-check]')}`)
      }
    }
    assert.fail(`the access log's check stayed unavailable`)
  }
  // The page checks its entries against the published transparency log, and keeps the head.
  await logCheck('checked')
  assert.match(await b.textContent('[data-test=log-check]'), /^Checked against the published log of /)
  // A head this phone kept that the served log no longer contains, as after a rewrite of the
  // audit rows: the page says so in red.
  await b.evaluate(() => {
    const kept = JSON.parse(localStorage.getItem('healthcode.tree-head'))
    const root = Uint8Array.from(atob(kept.root_hash), (c) => c.charCodeAt(0))
    root[0] ^= 1
    kept.root_hash = btoa(String.fromCharCode(...root))
    localStorage.setItem('healthcode.tree-head', JSON.stringify(kept))
  })
  await logCheck('rewritten')
  assert.match(await b.textContent('[data-test=log-check]'), /the audit log has been rewritten/)
  await record(b, 'access-log-rewritten')

  // An admin adds a venue and a device; the key is shown once.
  step('an admin adds a venue and a device')
  const admin = demo.accounts.find((x) => x.role === 'admin')
  const ctxD = await browser.newContext({ ...ctxOpts, viewport: DESKTOP })
  const d = await watched(ctxD, 'admin')
  await d.goto(BASE + '/console/signin')
  await firstSignIn(d, admin, 'the admin long password 4', '/console')
  await visit(d, '/console/venues')
  await d.fill('#v-name', 'Zhejiang Library')
  await d.selectOption('#v-category', 'other')
  await d.selectOption('#v-admission', 'green-or-yellow')
  await Promise.all([d.waitForEvent('load'), d.click('form[data-api$="admin/venues"] button[type=submit]')])
  const library = d.locator('[data-test=venues] > li', { hasText: 'Zhejiang Library' })
  await library.locator('input[name=label]').fill('north door')
  await library.locator('form button[type=submit]').click()
  await library.locator('[data-test=device-key] dd:has-text("hcd_")').waitFor()
  await record(d, 'console-venues-admin')

  // The admin's accounts page: every account with its second factor; the officer's sessions
  // are listed and can be ended; the admin's own account page lists its session.
  step('an admin sees the staff accounts and their sessions')
  await visit(d, '/console/accounts', 'console-accounts')
  const officerRow = d.locator(`[data-test="account-${officer.username}"]`)
  assert.equal(await officerRow.getAttribute('data-second-factor'), 'true')
  await visit(d, '/console/account', 'console-account')
  assert.equal(await d.locator('[data-test=sessions] li').count(), 1)

  // The auditor's log, with the chain verified.
  step("the auditor's log")
  const auditor = demo.accounts.find((x) => x.role === 'auditor')
  const ctxX = await browser.newContext({ ...ctxOpts, viewport: DESKTOP })
  const x = await watched(ctxX, 'auditor')
  await x.goto(BASE + '/console/signin')
  await firstSignIn(x, auditor, 'another long password 2', '/console/audit')
  await x.click('[data-test=verify]')
  await x.waitForSelector('[data-test=chain] dd')
  assert.match(await x.textContent('[data-test=chain]'), /intact\s*true/)
  await record(x, 'console-audit')
  // An auditor may not open the officers' pages.
  const refused = await x.goto(BASE + '/console/cases')
  assert.equal(refused.status(), 403)

  // A change sent with the session cookie but without the web header is refused.
  step('a cross-site style request is refused')
  const forged = await o.evaluate(async () => {
    const r = await fetch('/api/v1/admin/risk-areas', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ region: 'CN-HB', level: 'high', from: new Date().toISOString() }),
    })
    return r.status
  })
  assert.equal(forged, 403)

  // The camera: a second browser whose fake camera shows A's code, at the hospital's door.
  step("the scanner reads a code from the camera")
  const video = join(SHOTS, 'camera-resident-a.y4m')
  qrVideo(await a.getAttribute('#code', 'data-token'), video)
  const camBrowser = await chromium.launch({
    executablePath: process.env.HC_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--no-first-run',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${video}`],
  })
  try {
    const hospital = demo.devices.find((x) => x.venue === 2)
    const cctx = await camBrowser.newContext({ ...ctxOpts, viewport: DESKTOP, permissions: ['camera'] })
    const cam = await watched(cctx, 'camera scanner')
    await cam.goto(BASE + '/scan')
    await cam.fill('#device-key', hospital.key)
    await cam.click('#setup button[type=submit]')
    await cam.waitForSelector('[data-test=trust-state].ok')
    await cam.click('#camera-toggle')
    await cam.waitForSelector('[data-test=result]:not([hidden])', { timeout: 20000 })
    assert.equal(await cam.getAttribute('[data-test=result]', 'data-colour'), 'green')
    assert.equal(await cam.getAttribute('[data-test=result]', 'data-decision'), 'admit')
    await cam.click('#result-close')
    await cam.click('#camera-toggle')
    await cam.waitForSelector('[data-test=queue-state].ok', { timeout: 15000 })
  } finally {
    await camBrowser.close()
  }

  // Sign out ends the session.
  step('sign out')
  await a.click('[data-signout]')
  await a.waitForURL(BASE + '/')
  await a.goto(BASE + '/me')
  assert.match(a.url(), /\/signin/)

  writeFileSync(join(SHOTS, 'README.txt'), 'Screenshots written by web/tests/browser.mjs; regenerated on every run.\n')
} catch (e) {
  failures.push(`story: ${e.stack || e}`)
} finally {
  await browser.close()
}

if (failures.length) {
  console.error(`browser: ${failures.length} failure(s):\n  ${failures.join('\n  ')}`)
  process.exit(1)
}
console.log(`browser: ${steps} steps passed, screenshots in ${SHOTS}`)
