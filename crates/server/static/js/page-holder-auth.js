// Registration and sign-in with a one-time code sent by text message.
import { api, failure, localPath, say, t } from './common.js';

const form = document.querySelector('#register, #signin');
const status = form.querySelector('.status');
const next = form.dataset.next || '/me';

// The challenge of the last code sent: a guess counts only under it.
let challenge = '';

form.querySelector('#send-otp').addEventListener('click', async () => {
  const phone = form.phone.value.trim();
  if (!phone) {
    say(status, t('need_phone'), true);
    form.phone.focus();
    return;
  }
  say(status, t('sending'));
  try {
    const sent = await api('POST', '/api/v1/otp', { phone });
    challenge = sent.challenge;
    say(status, t('code_sent', { to: sent.to, minutes: Math.round(sent.expires_in_seconds / 60) }));
    form.otp.focus();
  } catch (e) {
    say(status, failure(e), true);
  }
});

// Residents and visitors give different documents.
function showKind() {
  const kind = form.querySelector('input[name=kind]:checked')?.value;
  for (const part of form.querySelectorAll('[data-kind]')) {
    part.hidden = part.dataset.kind !== kind;
  }
}
if (form.id === 'register') {
  for (const r of form.querySelectorAll('input[name=kind]')) r.addEventListener('change', showKind);
  showKind();
}

function body() {
  const v = (name) => form[name].value.trim();
  if (form.id === 'signin') return { phone: v('phone'), challenge, otp: v('otp') };
  const kind = form.querySelector('input[name=kind]:checked').value;
  if (kind === 'resident') {
    return { kind, name: v('name'), resident_id: v('resident_id').toUpperCase(), phone: v('phone'), challenge, otp: v('otp') };
  }
  return {
    kind,
    name: v('name'),
    passport: v('passport').toUpperCase(),
    nationality: v('nationality').toUpperCase(),
    birth_date: v('birth_date'),
    flight: v('flight').toUpperCase(),
    arrival: v('arrival'),
    phone: v('phone'),
    challenge,
    otp: v('otp'),
  };
}

// Session cookies are Secure: over plain HTTP (other than on this computer) the browser would
// drop them and sign-in would seem to do nothing, so say so at once.
if (!window.isSecureContext) say(status, t('insecure'), true);

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  say(status, t('sending'));
  try {
    await api('POST', form.id === 'signin' ? '/api/v1/sessions' : '/api/v1/holders', body());
    location.href = localPath(next, '/me');
  } catch (e) {
    say(status, failure(e), true);
  }
});
