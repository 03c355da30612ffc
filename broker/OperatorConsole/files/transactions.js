import { api, q } from './api.js';
import { h, table, duration, when, badge, act, say } from './ui.js';
import { every } from './refresh.js';

export async function render(app, _arg, params) {
  const group = h('select', { id: 'filter-group', 'aria-label': 'Producer group' }, h('option', { value: '' }, 'all producer groups'));
  const state = h('select', { id: 'filter-state', 'aria-label': 'State' },
    [['prepared', 'prepared (in doubt)'], ['committed', 'committed'], ['rolledBack', 'rolled back'], ['', 'any state']]
      .map(([value, label]) => h('option', { value }, label)));
  const age = h('select', { id: 'filter-age', 'aria-label': 'Minimum age' },
    [[0, 'any age'], [60, 'older than 1 min'], [600, 'older than 10 min'], [3600, 'older than 1 h'], [86400, 'older than 1 day']]
      .map(([value, label]) => h('option', { value }, label)));
  const refresh = h('button', { type: 'button', id: 'refresh' }, 'Refresh');
  const results = h('section', { id: 'transactions' });
  const more = h('button', { type: 'button', id: 'more', hidden: true }, 'Load more');
  app.append(h('div', { className: 'toolbar' }, h('h2', {}, 'Transactions'), group, state, age, refresh), results, more);

  if (params.get('producerGroup')) group.append(h('option', { value: params.get('producerGroup') }, params.get('producerGroup')));
  try {
    const groups = await api('GET', '/v1/producer-groups');
    for (const g of groups.producerGroups) {
      if (g.producerGroup !== params.get('producerGroup')) group.append(h('option', { value: g.producerGroup }, g.producerGroup));
    }
  } catch (e) { say(`Listing producer groups failed: ${e.message}`, true); }
  group.value = params.get('producerGroup') || '';
  if (params.has('state')) state.value = params.get('state');

  let shown = [];
  let next = null;
  const query = after => {
    const p = new URLSearchParams({ limit: '100' });
    if (state.value) p.set('state', state.value);
    if (group.value) p.set('producerGroup', group.value);
    if (Number(age.value) > 0) p.set('minAgeSeconds', age.value);
    if (after) p.set('after', after);
    return `/v1/transactions?${p}`;
  };
  const load = async () => {
    // A refresh re-reads as many pages as are shown, so "Load more" survives it.
    const pages = Math.max(1, Math.ceil(shown.length / 100));
    let items = [];
    let cursor = null;
    for (let i = 0; i < pages; i++) {
      const page = await api('GET', query(cursor));
      items = items.concat(page.transactions);
      cursor = page.next;
      if (!cursor) break;
    }
    shown = items;
    next = cursor;
    draw();
  };
  const draw = () => {
    more.hidden = !next;
    results.replaceChildren(shown.length === 0
      ? h('p', { className: 'muted', id: 'no-transactions' }, 'No transactions match.')
      : table(['Transaction', 'Topic', 'Producer group', 'State', 'Age', 'Checks', 'Last check', 'Next check', ''],
        shown.map(row), { id: 'transaction-table' }));
  };
  const row = t => h('tr', { 'data-transaction-id': t.transactionId, 'data-state': t.state },
    h('td', {}, h('a', { href: `#/messages/${q(t.messageId)}`, title: 'timeline' }, t.transactionId)),
    h('td', {}, t.topic),
    h('td', {}, t.producerGroup ?? '—'),
    h('td', {}, badge(t.state), t.resolvedBy ? h('span', { className: 'muted' }, ` by ${t.resolvedBy}`) : null),
    h('td', {}, duration(Date.now() - new Date(t.createdAt).getTime())),
    h('td', { className: 'checks' },
      `${t.checkCount} counted`,
      t.unreachableCount ? h('span', { className: 'error' }, ` · ${t.unreachableCount} unreachable`) : null,
      t.unknownCount ? ` · ${t.unknownCount} unknown` : null),
    h('td', {}, when(t.lastCheckAt), t.lastCheckResult ? h('div', { className: 'muted' }, t.lastCheckResult) : null),
    h('td', {}, when(t.nextCheckAt)),
    h('td', { className: 'actions' }, t.state === 'prepared' ? [
      h('button', { type: 'button', className: 'commit', onclick: () => end(t, 'commit') }, 'Commit'),
      h('button', { type: 'button', className: 'rollback danger', onclick: () => end(t, 'rollback') }, 'Roll back'),
      h('button', { type: 'button', className: 'check-now', onclick: () => checkNow(t) }, 'Check now'),
    ] : null));

  const end = (t, how) => act(how === 'commit' ? 'Commit' : 'Roll back', `transaction ${t.transactionId} (topic ${t.topic})`,
    async reason => {
      const r = await api('POST', `/v1/transactions/${q(t.transactionId)}/${how}`, { reason });
      await load();
      return `Transaction ${t.transactionId} is ${r.state}.`;
    });
  const checkNow = t => act('Check now', `ask producer group ${t.producerGroup} about ${t.transactionId} now`, async reason => {
    await api('POST', `/v1/transactions/${q(t.transactionId)}/check`, { reason });
    await load();
    return `Check of ${t.transactionId} brought forward to now.`;
  });

  const reload = () => { shown = []; load().catch(e => say(e.message, true)); };
  for (const f of [group, state, age]) f.addEventListener('change', reload);
  refresh.addEventListener('click', reload);
  more.addEventListener('click', async () => {
    const page = await api('GET', query(next));
    shown = shown.concat(page.transactions);
    next = page.next;
    draw();
  });
  try { await load(); } catch (e) { say(`Listing transactions failed: ${e.message}`, true); }
  return every(3000, load);
}
