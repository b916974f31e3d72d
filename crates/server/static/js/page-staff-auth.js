// Officers' sign-in; a password issued by someone else must be replaced at the first sign-in.
import { api, failure, localPath, say, t } from './common.js';

const form = document.getElementById('staff-signin');
const status = form.querySelector('.status');
const box = document.getElementById('new-password-box');

// Session cookies are Secure: over plain HTTP (other than on this computer) the browser would
// drop them and sign-in would seem to do nothing, so say so at once.
if (!window.isSecureContext) say(status, t('insecure'), true);

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = { username: form.username.value.trim(), password: form.password.value };
  if (!box.hidden && form.new_password.value) body.new_password = form.new_password.value;
  say(status, t('sending'));
  try {
    await api('POST', '/api/v1/admin/sessions', body);
    location.href = localPath(form.dataset.next, '/console');
  } catch (e) {
    if (e.status === 403 && box.hidden) {
      box.hidden = false;
      say(status, t('new_password_needed'), true);
      form.new_password.focus();
      return;
    }
    say(status, failure(e), true);
  }
});
