// Hand-drawn SVG line charts: one polyline per series, scaled to the largest value.
const svgNs = 'http://www.w3.org/2000/svg';

function svg(tag, attrs) {
  const el = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * @param series [{ name, values: counts per bucket, className }]
 * @param bucketSeconds the width of one bucket, to turn counts into per-second rates
 */
export function rateChart(title, series, bucketSeconds, { width = 320, height = 80 } = {}) {
  const figure = document.createElement('figure');
  figure.className = 'chart';
  const rates = series.map(s => ({ ...s, rates: s.values.map(v => v / bucketSeconds) }));
  const peak = Math.max(0, ...rates.flatMap(s => s.rates));
  // An idle chart keeps a scale of one message per bucket, so a flat line sits at the bottom.
  const max = Math.max(1 / bucketSeconds, peak);
  const n = Math.max(2, ...rates.map(s => s.rates.length));
  const pad = 2;
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': title });
  chart.append(svg('rect', { x: 0, y: 0, width, height, class: 'chart-bg' }));
  for (const fraction of [0.5]) {
    const y = pad + (height - 2 * pad) * fraction;
    chart.append(svg('line', { x1: 0, x2: width, y1: y, y2: y, class: 'chart-grid' }));
  }
  for (const s of rates) {
    const points = s.rates.map((r, i) => {
      const x = (i / (n - 1)) * width;
      const y = height - pad - (r / max) * (height - 2 * pad);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    chart.append(svg('polyline', { points: points.join(' '), class: `line ${s.className}` }));
  }
  const caption = document.createElement('figcaption');
  const name = document.createElement('strong');
  name.textContent = title;
  caption.append(name, ` — peak ${formatRate(peak)}/s`);
  const legend = document.createElement('span');
  legend.className = 'legend';
  for (const s of rates) {
    const item = document.createElement('span');
    item.className = `key ${s.className}`;
    const last = s.rates.length > 1 ? s.rates[s.rates.length - 2] : 0;
    item.textContent = `${s.name} ${formatRate(last)}/s`;
    legend.append(item);
  }
  caption.append(legend);
  figure.append(chart, caption);
  return figure;
}

function formatRate(r) {
  return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2);
}
