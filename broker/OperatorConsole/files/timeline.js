import { api, q } from './api.js';
import { h, when, badge, say } from './ui.js';
import { every } from './refresh.js';

export async function render(app, messageId) {
  const input = h('input', { id: 'message-id', type: 'search', placeholder: 'message id, or a message key', value: messageId, size: 40 });
  const form = h('form', { className: 'toolbar', id: 'lookup' }, h('h2', {}, 'Message timeline'), input, h('button', { type: 'submit' }, 'Show'));
  const view = h('section', { id: 'timeline-view' });
  app.append(form, view);
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const value = input.value.trim();
    if (/^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i.test(value)) {
      location.hash = `#/messages/${q(value)}`;
      return;
    }
    try {
      const found = await api('GET', `/v1/messages?key=${q(value)}&limit=50`);
      view.replaceChildren(found.messages.length === 0
        ? h('p', { className: 'muted' }, `No message has the key "${value}".`)
        : h('ul', { className: 'found' }, found.messages.map(m => h('li', {},
          h('a', { href: `#/messages/${q(m.messageId)}` }, m.messageId), ` ${m.topic} · ${m.state} · born `, when(m.bornAt)))));
    } catch (err) { say(err.message, true); }
  });
  if (!messageId) return null;

  const load = async () => {
    const m = await api('GET', `/v1/messages/${q(messageId)}`);
    let audit = [];
    if (m.transactionId) {
      try { audit = (await api('GET', `/v1/audit?target=${q(m.transactionId)}`)).entries; } catch { /* not shown */ }
    }
    view.replaceChildren(draw(m, audit));
  };
  try { await load(); } catch (e) {
    view.replaceChildren(h('p', { className: 'error' }, e.status === 404 ? `No message ${messageId} (it may have been purged).` : e.message));
    return null;
  }
  return every(3000, load);
}

function draw(m, audit) {
  const events = [];
  const t = m.transaction;
  events.push(event('born', m.bornAt, `${t ? 'Half message' : 'Message'} sent to topic ${m.topic}`,
    [m.producerGroup && `producer group ${m.producerGroup}`, m.transactionId && `transaction ${m.transactionId}`,
      m.tag && `tag ${m.tag}`, m.keys.length && `keys ${m.keys.join(', ')}`, m.deliverAt && 'delivered at ' + m.deliverAt].filter(Boolean).join(' · ')));
  if (t) {
    if (t.checkCount > 0 || t.unreachableCount > 0 || t.unknownCount > 0) {
      events.push(event('checks', t.lastCheckAt, `Check-backs: ${t.checkCount} counted`,
        [t.unreachableCount && `${t.unreachableCount} unreachable`, t.unknownCount && `${t.unknownCount} unknown`,
          t.lastCheckResult && `last answer: ${t.lastCheckResult}`].filter(Boolean).join(' · ')));
    }
    for (const a of audit) {
      events.push(event('audit', a.at, `${a.action} by ${a.actor}`, a.detail ?? ''));
    }
    if (m.state === 'prepared') {
      events.push(event('prepared', t.nextCheckAt, 'In doubt: waiting for the producer', 'next check-back at the time shown'));
    } else {
      const by = { producer: 'the producer (or an operator)', check: 'a check-back answer', checkExhausted: 'the broker: out of checks' }[t.resolvedBy] ?? t.resolvedBy;
      const admin = audit.find(a => a.action === `transaction.${m.state === 'committed' ? 'commit' : 'rollback'}`);
      events.push(event(m.state, t.resolvedAt, `${m.state === 'committed' ? 'Committed' : 'Rolled back'} by ${admin ? `${admin.actor} (console/admin)` : by}`, ''));
    }
  } else if (m.state === 'committed') {
    events.push(event('committed', m.resolvedAt ?? m.bornAt, 'Visible to consumers', 'a plain message is committed when sent'));
  }
  for (const d of m.deliveries) {
    const detail = [`${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`, d.lastError && `last error: ${d.lastError}`].filter(Boolean).join(' · ');
    const at = d.deadLetteredAt ?? d.nextAttemptAt ?? null;
    const li = event('delivery', at, `Consumer group ${d.consumerGroup}: `, detail);
    li.dataset.group = d.consumerGroup;
    li.dataset.state = d.state;
    li.querySelector('.what').append(badge(d.state));
    if (d.nextAttemptAt && d.state !== 'deadLettered') li.querySelector('.what').append(h('span', { className: 'muted' }, ' next attempt '), when(d.nextAttemptAt));
    if (d.state === 'deadLettered') {
      li.querySelector('.what').append(' ', h('a', { href: `#/dead-letters/${q(d.consumerGroup)}` }, 'see dead letters'));
    }
    events.push(li);
  }
  if (m.state === 'committed' && m.deliveries.length === 0) {
    events.push(event('delivery', null, 'No consumer group subscribed to the topic when it was committed', ''));
  }
  return h('div', {},
    h('p', {}, 'Message ', h('code', {}, m.messageId), ' ', badge(m.state)),
    h('ol', { className: 'timeline', id: 'timeline' }, events),
    h('details', {}, h('summary', {}, 'Body and properties'),
      h('pre', {}, JSON.stringify({ body: m.body, properties: m.properties }, null, 2))));
}

function event(kind, at, what, detail) {
  return h('li', { 'data-event': kind, className: `event event-${kind}` },
    h('div', { className: 'at' }, when(at)),
    h('div', { className: 'what' }, what),
    detail ? h('div', { className: 'detail muted' }, detail) : null);
}
