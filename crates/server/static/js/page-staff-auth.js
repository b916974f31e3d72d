// Officers' sign-in; a password issued by someone else must be replaced at the first sign-in, and
// an account without a second factor enrols one next. The code field takes the authenticator
// app's six digits or a recovery code. Failed sign-ins since the last one, and a recovery code
// just used, are said before going on.
import { api, failure, localPath, say, t } from './common.js';

const form = document.getElementById('staff-signin');
const status = form.querySelector('.status');
const box = document.getElementById('new-password-box');
const notice = document.getElementById('signin-notice');

// Session cookies are Secure: over plain HTTP (other than on this computer) the browser would
// drop them and sign-in would seem to do nothing, so say so at once.
if (!window.isSecureContext) say(status, t('insecure'), true);

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { username: form.username.value.trim(), password: form.password.value };
  const code = form.code.value.trim();
  if (/^\d{6}$/.test(code)) body.code = code;
  else if (code) body.recovery_code = code;
  if (!box.hidden && form.new_password.value) body.new_password = form.new_password.value;
  say(status, t('sending'));
  try {
    const s = await api('POST', '/api/v1/admin/sessions', body);
    const next = localPath(form.dataset.next, '/console');
    if (s.second_factor === 'enrol') {
      location.href = `/console/enrol?next=${encodeURIComponent(next)}`;
      return;
    }
    const told = [];
    if (s.failed_sign_ins > 0) told.push(t('failed_sign_ins', { n: s.failed_sign_ins, at: new Date(s.last_failed_sign_in_at).toLocaleString() }));
    if (s.recovery_codes_left !== undefined && s.recovery_codes_left !== null) told.push(t('recovery_left', { n: s.recovery_codes_left }));
    if (told.length === 0) {
      location.href = next;
      return;
    }
    say(status, '');
    notice.querySelector('span').textContent = told.join(' ');
    notice.querySelector('a').href = next;
    notice.hidden = false;
    notice.querySelector('a').focus();
  } catch (e) {
    if (e.status === 403 && box.hidden && /replaced/.test(e.message)) {
      box.hidden = false;
      // A code sent with it was used: the next sign-in needs the app's next one.
      form.code.value = '';
      say(status, t('new_password_needed'), true);
      form.new_password.focus();
      return;
    }
    say(status, failure(e), true);
  }
});
