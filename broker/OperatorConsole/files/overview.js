import { api } from './api.js';
import { h, table, duration, when, say } from './ui.js';
import { rateChart } from './charts.js';
import { every } from './refresh.js';

export async function render(app) {
  const minutes = h('select', { id: 'minutes', 'aria-label': 'Window' },
    [5, 10, 30].map(m => h('option', { value: m, selected: m === 10 }, `last ${m} minutes`)));
  const figures = h('section', { id: 'figures', className: 'cards' });
  const charts = h('section', { id: 'charts', className: 'charts' });
  app.append(h('div', { className: 'toolbar' }, h('h2', {}, 'Overview'), minutes), figures, charts);

  const load = async () => {
    const [overview, stats] = await Promise.all([
      api('GET', '/v1/stats/overview'),
      api('GET', `/v1/stats/topics?minutes=${minutes.value}`),
    ]);
    drawFigures(figures, overview);
    drawCharts(charts, stats);
  };
  minutes.addEventListener('change', () => load().catch(e => say(e.message, true)));
  try { await load(); } catch (e) { say(`Loading the overview failed: ${e.message}`, true); }
  return every(5000, load);
}

function drawFigures(el, o) {
  const oldest = o.oldestPreparedBornAt ? duration(Date.now() - new Date(o.oldestPreparedBornAt).getTime()) : '—';
  const c = o.checksSinceStart;
  const failures = c.failed + c.unreachable;
  el.replaceChildren(
    h('div', { className: 'card', id: 'prepared-card' },
      h('h3', {}, 'Prepared (in doubt)'),
      h('p', { className: 'big' }, h('a', { href: '#/transactions' }, String(o.prepared))),
      h('p', {}, 'oldest: ', h('strong', {}, oldest)),
      h('p', { className: 'muted' }, 'store figures as of ', when(o.figuresAt))),
    h('div', { className: 'card', id: 'checks-card' },
      h('h3', {}, 'Check-backs since start'),
      h('p', { className: failures > 0 ? 'big error' : 'big' }, `${failures} failed`),
      h('p', {}, `commit ${c.commit} · rollback ${c.rollback} · unknown ${c.unknown} · no answer ${c.failed} · unreachable ${c.unreachable}`)),
    h('div', { className: 'card', id: 'dead-letters-card' },
      h('h3', {}, 'Dead letters'),
      o.deadLetters.length === 0
        ? h('p', { className: 'muted' }, 'none')
        : table(['Consumer group', 'Topic', 'Count'], o.deadLetters.map(d => h('tr', {},
          h('td', {}, h('a', { href: `#/dead-letters/${encodeURIComponent(d.consumerGroup)}` }, d.consumerGroup)),
          h('td', {}, d.topic), h('td', { className: 'num' }, String(d.count)))))));
}

function drawCharts(el, stats) {
  const s = stats.bucketSeconds;
  const children = stats.topics.map(t => rateChart(`topic ${t.topic}`, [
    { name: 'sent', values: t.sent, className: 'sent' },
    { name: 'committed', values: t.committed, className: 'committed' },
    { name: 'rolled back', values: t.rolledBack, className: 'rolledback' },
    { name: 'acked', values: t.acked, className: 'acked' },
  ], s));
  const ch = stats.checks;
  children.push(rateChart('check-backs', [
    { name: 'commit', values: ch.commit, className: 'committed' },
    { name: 'rollback', values: ch.rollback, className: 'rolledback' },
    { name: 'unknown', values: ch.unknown, className: 'unknown' },
    { name: 'failed', values: ch.failed.map((v, i) => v + ch.unreachable[i]), className: 'failed' },
  ], s));
  if (stats.topics.length === 0) children.unshift(h('p', { className: 'muted' }, 'No messages in this window.'));
  el.replaceChildren(...children);
}
