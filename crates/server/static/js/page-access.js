// The holder's access-log page: checks that each listed entry is in the published transparency
// log (an inclusion proof against the newest signed tree head), and that the log still extends
// the head this browser checked last time (a consistency proof), keeping that head in
// localStorage. A failure is shown as a warning that the log was rewritten or an entry is missing.

import { t } from './common.js'
import { openTrustList } from './hc1.js'
import { verifyConsistency, verifyInclusion, verifyTreeHead } from './transparency.js'

const KEPT = 'healthcode.tree-head'
const box = document.getElementById('log-check')

function show (state, message) {
  if (!box) return
  box.dataset.state = state
  box.textContent = message
  box.classList.toggle('error', state !== 'checked' && state !== 'checking')
  box.setAttribute('role', state === 'checked' || state === 'checking' ? 'status' : 'alert')
}

async function getJson (path) {
  const res = await fetch(path, { headers: { accept: 'application/json' } })
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`)
  return res.json()
}

function kept () {
  try {
    const h = JSON.parse(localStorage.getItem(KEPT) || 'null')
    return h && typeof h.tree_size === 'number' && typeof h.root_hash === 'string' ? h : null
  } catch {
    return null
  }
}

async function check () {
  if (!box) return
  show('checking', t('log_checking'))
  let list, head
  try {
    const text = await (await fetch('/api/v1/trust-list')).text()
    list = await openTrustList(text, box.dataset.rootKey)
    head = await getJson('/api/v1/transparency/head')
  } catch {
    show('unavailable', t('log_unavailable'))
    return
  }
  if (!await verifyTreeHead(head, list)) {
    show('bad-head', t('log_bad_head'))
    return
  }
  const before = kept()
  if (before) {
    let consistent = false
    if (before.tree_size <= head.tree_size) {
      try {
        const c = await getJson(`/api/v1/transparency/consistency?first=${before.tree_size}&second=${head.tree_size}`)
        consistent = await verifyConsistency(before.tree_size, before.root_hash, head.tree_size, head.root_hash, c.proof)
      } catch {
        consistent = false
      }
    }
    if (!consistent) {
      show('rewritten', t('log_rewritten', { at: new Date(before.timestamp).toLocaleString() }))
      return
    }
  }
  let pending = 0
  for (const row of document.querySelectorAll('[data-leaf-index]')) {
    const index = Number(row.dataset.leafIndex)
    if (index >= head.tree_size) {
      pending++
      continue
    }
    let included = false
    try {
      const p = await getJson(`/api/v1/transparency/inclusion?index=${index}&tree_size=${head.tree_size}`)
      included = p.leaf === row.dataset.leaf &&
        await verifyInclusion(row.dataset.leaf, index, head.tree_size, head.root_hash, p.proof)
    } catch {
      included = false
    }
    if (!included) {
      row.classList.add('error')
      show('missing', t('log_missing'))
      return
    }
  }
  localStorage.setItem(KEPT, JSON.stringify(head))
  const at = new Date(head.timestamp).toLocaleString()
  show('checked', pending ? t('log_pending', { at, n: pending }) : t('log_checked', { at }))
}

check()
