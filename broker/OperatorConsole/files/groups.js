import { api, q } from './api.js';
import { h, table, when, badge, act, say } from './ui.js';
import { every } from './refresh.js';

export async function render(app) {
  const consumers = h('section', { id: 'consumer-groups' });
  const producers = h('section', { id: 'producer-groups' });
  app.append(h('h2', {}, 'Consumer groups'), consumers, h('h2', {}, 'Producer groups'), producers);

  const load = async () => {
    const [c, p] = await Promise.all([api('GET', '/v1/consumer-groups'), api('GET', '/v1/producer-groups')]);
    const rows = c.consumerGroups.flatMap(g => g.subscriptions.map(s => subscriptionRow(s, load)));
    consumers.replaceChildren(rows.length === 0 ? h('p', { className: 'muted' }, 'No subscriptions.')
      : table(['Group', 'Topic', 'Mode', 'Ready', 'In flight', 'Retrying', 'Dead letters', 'Push health', ''], rows, { id: 'subscription-table' }));
    producers.replaceChildren(p.producerGroups.length === 0 ? h('p', { className: 'muted' }, 'No producer groups.')
      : table(['Group', 'Check URL', 'Timeout', 'Signing', ''], p.producerGroups.map(g => h('tr', { 'data-producer-group': g.producerGroup },
        h('td', {}, g.producerGroup), h('td', {}, g.checkUrl ?? '—'), h('td', {}, `${g.checkTimeoutMs} ms`), h('td', {}, g.signing),
        h('td', {}, h('a', { href: `#/transactions?producerGroup=${q(g.producerGroup)}&state=prepared` }, 'in doubt'))))));
  };
  try { await load(); } catch (e) { say(`Listing groups failed: ${e.message}`, true); }
  return every(3000, load);
}

function subscriptionRow(s, reload) {
  const c = s.counts;
  const health = s.pushHealth;
  const path = `/v1/consumer-groups/${q(s.consumerGroup)}/subscriptions/${q(s.topic)}`;
  const toggle = pause => act(pause ? 'Pause' : 'Resume', `push subscription ${s.consumerGroup}/${s.topic}`, async reason => {
    await api('POST', `${path}/${pause ? 'pause' : 'resume'}`, { reason });
    await reload();
    return `${s.consumerGroup}/${s.topic} ${pause ? 'paused' : 'resumed'}.`;
  });
  return h('tr', { 'data-subscription': `${s.consumerGroup}/${s.topic}`, 'data-paused': String(s.paused) },
    h('td', {}, s.consumerGroup), h('td', {}, s.topic),
    h('td', {}, s.push ? ['push ', h('code', {}, s.push.url), s.paused ? [' ', badge('paused')] : null] : 'pull'),
    h('td', { className: 'num ready' }, String(c.ready)), h('td', { className: 'num' }, String(c.inFlight)),
    h('td', { className: 'num' }, String(c.retrying)),
    h('td', { className: 'num' }, c.deadLettered ? h('a', { href: `#/dead-letters/${q(s.consumerGroup)}` }, String(c.deadLettered)) : '0'),
    h('td', { className: 'health' }, !health ? '—' : health.consecutiveFailures > 0
      ? h('span', { className: 'error' }, `${health.consecutiveFailures} failed in a row: ${health.lastError}`)
      : health.lastSuccessAt ? ['ok, last push ', when(health.lastSuccessAt)] : h('span', { className: 'muted' }, 'no push yet')),
    h('td', { className: 'actions' }, !s.push ? null : s.paused
      ? h('button', { type: 'button', className: 'resume', onclick: () => toggle(false) }, 'Resume')
      : h('button', { type: 'button', className: 'pause danger', onclick: () => toggle(true) }, 'Pause')));
}
