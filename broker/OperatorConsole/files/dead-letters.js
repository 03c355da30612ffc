import { api, q } from './api.js';
import { h, table, when, act, say } from './ui.js';
import { every } from './refresh.js';

export async function render(app, groupName) {
  const group = h('select', { id: 'dead-letter-group', 'aria-label': 'Consumer group' }, h('option', { value: '' }, 'choose a consumer group'));
  const redriveSelected = h('button', { type: 'button', id: 'redrive-selected', disabled: true }, 'Redrive selected');
  const redriveAll = h('button', { type: 'button', id: 'redrive-all' }, 'Redrive all');
  const deleteAll = h('button', { type: 'button', id: 'delete-all', className: 'danger' }, 'Delete all');
  const results = h('section', { id: 'dead-letters' });
  app.append(h('div', { className: 'toolbar' }, h('h2', {}, 'Dead letters'), group, redriveSelected, redriveAll, deleteAll), results);

  try {
    const groups = await api('GET', '/v1/consumer-groups');
    for (const g of groups.consumerGroups) {
      const dead = g.subscriptions.reduce((n, s) => n + (s.counts?.deadLettered ?? 0), 0);
      group.append(h('option', { value: g.consumerGroup }, `${g.consumerGroup} (${dead})`));
    }
  } catch (e) { say(`Listing consumer groups failed: ${e.message}`, true); }
  if (groupName && ![...group.options].some(o => o.value === groupName)) group.append(h('option', { value: groupName }, groupName));
  group.value = groupName || '';
  group.addEventListener('change', () => { location.hash = `#/dead-letters/${q(group.value)}`; });
  for (const b of [redriveAll, deleteAll]) b.disabled = !groupName;
  if (!groupName) {
    results.append(h('p', { className: 'muted' }, 'Choose a consumer group.'));
    return null;
  }

  const selected = new Set();
  let items = [];
  const load = async () => {
    // At most the first 1000; redrive all and delete all reach every one of them.
    const page = await api('GET', `/v1/consumer-groups/${q(groupName)}/dead-letters?limit=1000`);
    items = page.deadLetters;
    for (const id of [...selected]) if (!items.some(d => d.messageId === id)) selected.delete(id);
    draw(page.next !== null);
  };
  const draw = more => {
    redriveSelected.disabled = selected.size === 0;
    redriveSelected.textContent = `Redrive selected (${selected.size})`;
    results.replaceChildren(items.length === 0
      ? h('p', { className: 'muted', id: 'no-dead-letters' }, `Consumer group ${groupName} has no dead letters.`)
      : table(['', 'Message', 'Topic', 'Tag', 'Attempts', 'Last error', 'Dead-lettered', ''], items.map(row), { id: 'dead-letter-table' }),
      more ? h('p', { className: 'muted' }, 'Showing the first 1000.') : '');
  };
  const row = d => h('tr', { 'data-message-id': d.messageId },
    h('td', {}, h('input', {
      type: 'checkbox', className: 'select', 'aria-label': `select ${d.messageId}`, checked: selected.has(d.messageId),
      onchange: e => { e.target.checked ? selected.add(d.messageId) : selected.delete(d.messageId); draw(false); },
    })),
    h('td', {}, h('a', { href: `#/messages/${q(d.messageId)}` }, d.messageId)),
    h('td', {}, d.topic), h('td', {}, d.tag ?? ''), h('td', { className: 'num' }, String(d.attempts)),
    h('td', {}, d.lastError ?? ''), h('td', {}, when(d.deadLetteredAt)),
    h('td', { className: 'actions' },
      h('button', { type: 'button', className: 'redrive', onclick: () => redrive([d.messageId]) }, 'Redrive'),
      h('button', { type: 'button', className: 'delete danger', onclick: () => remove(d.messageId) }, 'Delete')));

  const redrive = ids => act('Redrive', ids ? `${ids.length} dead letter(s) of ${groupName}` : `every dead letter of ${groupName}`, async reason => {
    const r = await api('POST', `/v1/consumer-groups/${q(groupName)}/dead-letters/redrive`, { body: ids ? { messageIds: ids } : {}, reason });
    for (const id of ids ?? []) selected.delete(id);
    await load();
    return `${r.redriven} redriven.`;
  });
  const remove = id => act('Delete', `dead letter ${id} of ${groupName} (it is discarded for this group)`, async reason => {
    await api('DELETE', `/v1/consumer-groups/${q(groupName)}/dead-letters/${q(id)}`, { reason });
    selected.delete(id);
    await load();
    return `Dead letter ${id} deleted.`;
  });
  redriveSelected.addEventListener('click', () => redrive([...selected]));
  redriveAll.addEventListener('click', () => redrive(null));
  deleteAll.addEventListener('click', () => act('Delete all', `every dead letter of ${groupName}`, async reason => {
    const r = await api('DELETE', `/v1/consumer-groups/${q(groupName)}/dead-letters`, { reason });
    selected.clear();
    await load();
    return `${r.deleted} deleted.`;
  }));
  try { await load(); } catch (e) { say(`Listing dead letters failed: ${e.message}`, true); }
  return every(5000, load);
}
