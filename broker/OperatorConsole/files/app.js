// The console's shell: sign-in, hash routes, and one refresh timer for the page on screen.
import { api, session, whenUnauthenticated } from './api.js';
import { say } from './ui.js';
import * as overview from './overview.js';
import * as transactions from './transactions.js';
import * as timeline from './timeline.js';
import * as deadLetters from './dead-letters.js';
import * as groups from './groups.js';

const pages = { overview, transactions, messages: timeline, 'dead-letters': deadLetters, groups };
const app = document.getElementById('app');
let current = null;

function route() {
  const [, name = 'overview', ...rest] = location.hash.replace(/^#/, '').split('/');
  const [path, query = ''] = rest.join('/').split('?');
  return { name: pages[name] ? name : 'overview', arg: decodeURIComponent(path || ''), params: new URLSearchParams(query) };
}

async function show() {
  if (!session.signedIn) return showSignIn();
  document.getElementById('sign-in-view').hidden = true;
  document.getElementById('nav').hidden = false;
  document.getElementById('sign-out').hidden = false;
  app.hidden = false;
  current?.stop?.();
  current = null;
  const { name, arg, params } = route();
  for (const link of document.querySelectorAll('#nav a')) link.classList.toggle('active', link.dataset.page === name);
  app.replaceChildren();
  app.dataset.page = name;
  say('');
  current = await pages[name].render(app, arg, params) || null;
}

function showSignIn(message = '') {
  current?.stop?.();
  current = null;
  app.hidden = true;
  app.replaceChildren();
  document.getElementById('nav').hidden = true;
  document.getElementById('sign-out').hidden = true;
  document.getElementById('sign-in-view').hidden = false;
  document.getElementById('sign-in-error').textContent = message;
  document.getElementById('key-input').focus();
}

document.getElementById('sign-in').addEventListener('submit', async e => {
  e.preventDefault();
  const input = document.getElementById('key-input');
  session.signIn(input.value.trim());
  input.value = '';
  try {
    await api('GET', '/v1/stats/overview');
  } catch (err) {
    session.signOut();
    showSignIn(err.status === 401 || err.status === 403
      ? 'That key was refused: the console needs an admin key.'
      : `The broker did not answer: ${err.message}`);
    return;
  }
  show();
});

document.getElementById('sign-out').addEventListener('click', () => {
  session.signOut();
  showSignIn();
});

whenUnauthenticated(() => {
  session.signOut();
  showSignIn('The broker no longer accepts this key; sign in again.');
});

window.addEventListener('hashchange', show);
show();
