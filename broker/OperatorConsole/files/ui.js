// Small DOM helpers: every piece of data goes in as text, never as markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'className') el.className = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function table(headers, rows, attrs = {}) {
  return h('table', attrs,
    h('thead', {}, h('tr', {}, headers.map(title => h('th', {}, title)))),
    h('tbody', {}, rows));
}

/** "3m 12s" from milliseconds. */
export function duration(ms) {
  if (ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours}h ${m % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** A time as "12:03:04 (2m 5s ago)", with the full ISO time on hover. */
export function when(iso) {
  if (!iso) return h('span', { className: 'muted' }, '—');
  const t = new Date(iso);
  const delta = Date.now() - t.getTime();
  const relative = delta >= 0 ? `${duration(delta)} ago` : `in ${duration(-delta)}`;
  return h('time', { datetime: iso, title: iso }, `${t.toLocaleTimeString()} (${relative})`);
}

export function badge(text, kind = text) {
  return h('span', { className: `badge badge-${kind}` }, text);
}

const statusLine = () => document.getElementById('status');

export function say(message, isError = false) {
  const el = statusLine();
  el.textContent = message;
  el.className = isError ? 'status error' : 'status';
}

/** Asks why; resolves to the reason, or null when cancelled. */
export function askReason(title, what) {
  const dialog = document.getElementById('reason-dialog');
  const form = document.getElementById('reason-form');
  const text = document.getElementById('reason-text');
  document.getElementById('reason-title').textContent = title;
  document.getElementById('reason-what').textContent = what;
  text.value = '';
  return new Promise(resolve => {
    const done = value => {
      form.removeEventListener('submit', submit);
      cancel.removeEventListener('click', cancelled);
      dialog.removeEventListener('cancel', cancelled);
      dialog.close();
      resolve(value);
    };
    const submit = e => {
      e.preventDefault();
      const reason = text.value.trim();
      if (reason) done(reason);
    };
    const cancelled = e => { e.preventDefault(); done(null); };
    const cancel = document.getElementById('reason-cancel');
    form.addEventListener('submit', submit);
    cancel.addEventListener('click', cancelled);
    dialog.addEventListener('cancel', cancelled);
    dialog.showModal();
    text.focus();
  });
}

/** Runs an action that needs a reason, then reports how it went. */
export async function act(title, what, run) {
  const reason = await askReason(title, what);
  if (reason === null) return false;
  try {
    const message = await run(reason);
    say(message || `${title}: done.`);
    return true;
  } catch (e) {
    say(`${title} failed: ${e.message}`, true);
    return false;
  }
}
