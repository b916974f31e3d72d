// My code: draws the signed code as a QR, runs a clock and a live animation so that a
// screenshot is obvious, renews the code before it expires, and keeps the last one on the phone
// for when the network drops (it stays valid until its own expiry, as at the gate).
import { api, keepOffline, t } from './common.js';
import { drawQr } from './qrdraw.js';

const card = document.getElementById('code');
const qr = document.getElementById('qr');
const clock = document.getElementById('clock');
const expiry = document.getElementById('expiry');
const offline = document.getElementById('offline');
const KEY = 'healthcode.code';
// Renew this long before expiry, and retry this often while the server cannot be reached.
const RENEW_BEFORE_MS = 60_000;
const RETRY_MS = 15_000;

let current = {
  token: card.dataset.token,
  colour: card.dataset.colour,
  expires: Number(card.dataset.expires) * 1000,
};
// A page opened from the phone's copy while offline may be older than the code saved since.
try {
  const saved = JSON.parse(localStorage.getItem(KEY) || 'null');
  if (saved && saved.colour === current.colour && saved.expires > current.expires) current = saved;
} catch {
  // Nothing usable saved.
}

function save() {
  try {
    localStorage.setItem(KEY, JSON.stringify(current));
  } catch {
    // Storage full or refused: the code still shows while the page is open.
  }
}

function show() {
  drawQr(qr, current.token, { label: document.getElementById('colour-text').textContent });
  qr.hidden = false;
  expiry.textContent = new Date(current.expires).toLocaleString(document.documentElement.lang);
}

function tick() {
  const now = Date.now();
  clock.textContent = new Date(now).toLocaleTimeString(document.documentElement.lang, { hour12: false });
  if (now >= current.expires) {
    // An expired code must not be shown as if it were valid.
    qr.hidden = true;
    offline.hidden = false;
    offline.textContent = t('offline_expired');
  }
}

let timer;
async function renew() {
  clearTimeout(timer);
  try {
    const code = await api('GET', '/api/v1/me/code');
    const changed = code.colour !== current.colour;
    current = { token: code.token, colour: code.colour, expires: Date.parse(code.expires_at) };
    save();
    if (changed) {
      // A new colour brings new reasons: show the page as the server renders it.
      location.reload();
      return;
    }
    offline.hidden = true;
    show();
    schedule();
  } catch (e) {
    if (e && e.status === 401) {
      location.href = '/signin?next=/me';
      return;
    }
    offline.hidden = false;
    offline.textContent = Date.now() < current.expires ? t('offline_cached') : t('offline_expired');
    timer = setTimeout(renew, RETRY_MS);
  }
}

function schedule() {
  const wait = Math.max(5_000, current.expires - Date.now() - RENEW_BEFORE_MS);
  timer = setTimeout(renew, wait);
}

// Says when the code shown is the phone's copy.
function offlineNote() {
  if (navigator.onLine) return;
  offline.hidden = false;
  offline.textContent = Date.now() < current.expires ? t('offline_cached') : t('offline_expired');
}

keepOffline();
save();
show();
tick();
offlineNote();
window.addEventListener('offline', offlineNote);
setInterval(tick, 1000);
schedule();
window.addEventListener('online', renew);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && Date.now() > current.expires - RENEW_BEFORE_MS) renew();
});
