// The venue scanner. Set up once with the device's key; from then on every code is verified
// here, in the browser, against the root-signed trust list kept on the device, so the door keeps
// working when the network or the server is down. Each verified scan goes into an IndexedDB
// queue and is uploaded in order whenever the server answers; the server checks it again as of
// the scan's time and records admitted entries.
import { api, keepOffline, t } from './common.js';
import { isStale, openTrustList, verifyCode } from './hc1.js';
import { decodeImageData } from './qrdraw.js';
import { openQueue } from './queue.js';

const root = document.getElementById('scanner');
const setup = document.getElementById('setup');
const door = document.getElementById('door');
const result = document.getElementById('result');
const DEVICE = 'healthcode.scanner.device';
const TRUST = 'healthcode.scanner.trust';
const UPLOAD_EVERY_MS = 10_000;
const TRUST_EVERY_MS = 10 * 60_000;
const BATCH = 500;

let device = JSON.parse(localStorage.getItem(DEVICE) || 'null');
let trust = null;
let queue = null;

// ---- trust list -----------------------------------------------------------------------------

async function loadTrust() {
  const saved = localStorage.getItem(TRUST);
  if (saved && device) {
    try {
      trust = await openTrustList(saved, device.root);
    } catch {
      trust = null;
    }
  }
}

async function refreshTrust() {
  if (!device) return;
  try {
    const res = await fetch(root.dataset.trustListUrl, { cache: 'no-store' });
    if (!res.ok) return;
    const list = await openTrustList(await res.text(), device.root, trust || undefined);
    trust = list;
    localStorage.setItem(TRUST, list.text);
  } catch {
    // Offline, or a list that does not verify or is older than ours: keep the one we have.
  }
  showState();
}

// ---- state badges ---------------------------------------------------------------------------

function day(seconds) {
  return new Date(seconds * 1000).toLocaleString(document.documentElement.lang);
}

async function showState() {
  document.getElementById('net-state').textContent = navigator.onLine ? t('online') : t('offline');
  document.getElementById('net-state').className = navigator.onLine ? 'ok' : 'warn';
  const n = queue ? await queue.count() : 0;
  const q = document.getElementById('queue-state');
  q.textContent = keyRefused ? t('key_refused') : n ? t('queued', { n }) : t('queue_empty');
  q.className = keyRefused || n ? 'warn' : 'ok';
  const ts = document.getElementById('trust-state');
  if (!trust) {
    ts.textContent = t('trust_missing');
    ts.className = 'warn';
  } else if (isStale(trust, Date.now() / 1000)) {
    ts.textContent = t('trust_stale', { date: day(trust.next_update) });
    ts.className = 'warn';
  } else {
    ts.textContent = t('trust_age', { date: day(trust.issued_at) });
    ts.className = 'ok';
  }
}

// ---- the door -------------------------------------------------------------------------------

function admits(colour) {
  switch (device.admission) {
    case 'all':
      return true;
    case 'green-or-yellow':
      return colour === 'green' || colour === 'yellow';
    default:
      return colour === 'green';
  }
}

let audio;
function beep(ok) {
  try {
    audio ??= new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = ok ? 880 : 220;
    osc.type = ok ? 'sine' : 'square';
    gain.gain.value = 0.15;
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + (ok ? 0.15 : 0.5));
  } catch {
    // No audio output: the screen still shows the result.
  }
}

let hideTimer;
function showResult(kind, colour, decision, name, reason) {
  result.className = `result ${kind}`;
  result.dataset.colour = colour || 'invalid';
  result.dataset.decision = decision;
  result.querySelector('.shape').className = `shape big ${colour || 'invalid'}`;
  document.getElementById('result-colour').textContent = colour ? t(`colour_${colour}`) : t('invalid');
  document.getElementById('result-decision').textContent = decision === 'admit' ? t('admit') : t('deny');
  document.getElementById('result-name').textContent = name || '';
  document.getElementById('result-reason').textContent = reason || '';
  result.hidden = false;
  // The focus stays in the input, so that a hardware scanner's next code is not lost; the
  // result is announced by its alert role.
  beep(decision === 'admit');
  clearTimeout(hideTimer);
  hideTimer = setTimeout(closeResult, 4000);
}

function closeResult() {
  result.hidden = true;
}

async function check(text) {
  const token = String(text || '').trim();
  if (!token) return;
  if (keyRefused) {
    showResult('invalid', null, 'deny', '', t('key_refused'));
    return;
  }
  const now = Date.now();
  const v = trust
    ? await verifyCode(token, trust, Math.floor(now / 1000))
    : { ok: false, kind: 'unknown-key', message: t('trust_missing') };
  if (!v.ok) {
    showResult('invalid', null, 'deny', '', v.message);
    return;
  }
  const ok = admits(v.colour);
  const notes = [];
  if (v.greenFrom) notes.push(t('green_from', { date: v.greenFrom }));
  if (v.stale) notes.push(t('trust_stale', { date: day(trust.next_update) }));
  showResult(v.colour, v.colour, ok ? 'admit' : 'deny', v.nameHint, notes.join(' · '));
  await queue.add({ token, scanned_at: new Date(now).toISOString() });
  showState();
  upload();
}

// ---- upload ---------------------------------------------------------------------------------

let uploading = false;
// Set when the server refuses this scanner's key (an administrator revoked it): the door stops
// admitting, since nothing it scans can be recorded; the queue is kept on the device.
let keyRefused = false;
async function upload() {
  if (uploading || !device) return;
  uploading = true;
  try {
    for (;;) {
      const pending = (await queue.pending()).slice(0, BATCH);
      if (!pending.length) break;
      const scans = pending.map((s) => ({ token: s.token, seq: s.seq, at: s.scanned_at }));
      // The server answers after the entries are stored; only then are they removed here.
      await api('POST', '/api/v1/scans/batch', { venue: device.venue, scans }, { authorization: `Bearer ${device.key}` });
      await queue.remove(pending.map((s) => s.seq));
    }
  } catch (e) {
    // Offline or refused: the queue keeps everything for the next try. A refused key is said
    // at once and stops the door.
    if (e && e.status === 401) {
      keyRefused = true;
      showResult('invalid', null, 'deny', '', t('key_refused'));
    }
  } finally {
    uploading = false;
    showState();
  }
}

// ---- camera and pictures --------------------------------------------------------------------

const video = document.getElementById('camera');
const toggle = document.getElementById('camera-toggle');
let stream = null;
let lastText = '';
let lastAt = 0;

function decodeFrom(source, width, height) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const g = canvas.getContext('2d', { willReadFrequently: true });
  g.drawImage(source, 0, 0, width, height);
  return decodeImageData(g.getImageData(0, 0, width, height));
}

function frame() {
  if (!stream) return;
  if (video.readyState >= 2 && result.hidden) {
    const text = decodeFrom(video, video.videoWidth, video.videoHeight);
    // The same code held in front of the camera is checked once every few seconds.
    if (text && (text !== lastText || Date.now() - lastAt > 5000)) {
      lastText = text;
      lastAt = Date.now();
      check(text);
    }
  }
  requestAnimationFrame(frame);
}

toggle.addEventListener('click', async () => {
  if (stream) {
    for (const tr of stream.getTracks()) tr.stop();
    stream = null;
    toggle.textContent = t('camera_start');
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
    video.srcObject = stream;
    await video.play();
    toggle.textContent = t('camera_stop');
    requestAnimationFrame(frame);
  } catch (e) {
    showResult('invalid', null, 'deny', '', t('camera_denied', { detail: e.message }));
  }
});

document.getElementById('image-input').addEventListener('change', async (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  const bitmap = await createImageBitmap(file);
  const text = decodeFrom(bitmap, bitmap.width, bitmap.height);
  ev.target.value = '';
  if (!text) {
    showResult('invalid', null, 'deny', '', t('no_qr'));
    return;
  }
  check(text);
});

document.getElementById('typed').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = document.getElementById('token-input');
  const text = input.value;
  input.value = '';
  check(text);
});

result.addEventListener('click', closeResult);
document.getElementById('result-close').addEventListener('click', closeResult);

document.getElementById('forget').addEventListener('click', async () => {
  await upload();
  const left = await queue.count();
  if (!confirm(left ? t('confirm_forget_queued', { n: left }) : t('confirm_forget'))) return;
  localStorage.removeItem(DEVICE);
  localStorage.removeItem(TRUST);
  for (const s of await queue.pending()) await queue.remove([s.seq]);
  location.reload();
});

// ---- set-up ---------------------------------------------------------------------------------

setup.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const status = setup.querySelector('.status');
  const key = setup.key.value.trim();
  status.textContent = t('sending');
  try {
    const info = await api('GET', '/api/v1/device', undefined, { authorization: `Bearer ${key}` });
    // The root key is pinned at set-up: later trust lists must be signed by it.
    device = { key, venue: info.venue, venue_name: info.venue_name, admission: info.admission, root: root.dataset.rootKey };
    localStorage.setItem(DEVICE, JSON.stringify(device));
    await refreshTrust();
    status.textContent = t('setup_done', { venue: info.venue_name });
    start();
  } catch (e) {
    status.textContent = t('failed', { detail: e.message });
    status.classList.add('error');
  }
});

async function start() {
  setup.hidden = true;
  door.hidden = false;
  document.getElementById('venue-name').textContent = device.venue_name;
  document.getElementById('venue-admission').textContent = t(`admission_${device.admission}`);
  await loadTrust();
  await showState();
  refreshTrust();
  upload();
  setInterval(upload, UPLOAD_EVERY_MS);
  setInterval(refreshTrust, TRUST_EVERY_MS);
  window.addEventListener('online', () => {
    showState();
    refreshTrust();
    upload();
  });
  window.addEventListener('offline', showState);
  document.getElementById('token-input').focus();
}

keepOffline();
queue = await openQueue();
if (device) {
  start();
} else {
  setup.hidden = false;
}
