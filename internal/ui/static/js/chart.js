// A small SVG line chart for live metrics: time on x (the last `span`
// seconds up to now), one line per series, gaps where a value is null.

import {s} from './dom.js';

const W = 360;
const H = 150;
const M = {top: 8, right: 10, bottom: 20, left: 46};

// niceMax rounds a maximum up to 1, 2, 2.5 or 5 × a power of ten.
export function niceMax(v, floor) {
  const x = Math.max(v, floor);
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

// lineChart returns an <svg>. series: [{name, color, points: [[t ms, v|null]…], dashed}];
// format(v) labels the y axis; floor is the smallest y maximum; label is
// the accessible description.
export function lineChart({series, now, span, format, floor = 1, label}) {
  const x0 = now - span * 1000;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  let max = 0;
  for (const se of series) for (const [t, v] of se.points) if (v !== null && t >= x0 && v > max) max = v;
  const ymax = niceMax(max, floor);
  const X = (t) => M.left + ((t - x0) / (span * 1000)) * pw;
  const Y = (v) => M.top + ph - (v / ymax) * ph;

  const svg = s('svg', {class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, preserveAspectRatio: 'xMidYMid meet'});
  const grid = s('g', {class: 'grid'});
  const axis = s('g', {class: 'axis'});
  for (const f of [0, 0.5, 1]) {
    const y = Y(ymax * f);
    grid.append(s('line', {x1: M.left, x2: W - M.right, y1: y, y2: y}));
    axis.append(s('text', {x: M.left - 6, y: y + 3.5, 'text-anchor': 'end'}, format(ymax * f)));
  }
  const ticks = span > 120 ? 60 : span > 60 ? 30 : 10;
  for (let ago = 0; ago <= span; ago += ticks) {
    const x = X(now - ago * 1000);
    axis.append(s('text', {x, y: H - 6, 'text-anchor': ago === 0 ? 'end' : ago === span ? 'start' : 'middle'},
      ago === 0 ? 'now' : `−${ago >= 60 && ago % 60 === 0 ? ago / 60 + 'm' : ago + 's'}`));
  }
  svg.append(grid, axis);

  let any = false;
  const lines = s('g', {class: 'series'});
  for (const se of series) {
    const pts = se.points.filter(([t]) => t >= x0);
    let run = [];
    const flush = () => {
      if (run.length > 1) {
        lines.append(s('polyline', {points: run.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' '), stroke: se.color,
          'stroke-dasharray': se.dashed ? '5 4' : null}));
      } else if (run.length === 1) {
        lines.append(s('circle', {cx: run[0][0].toFixed(1), cy: run[0][1].toFixed(1), r: 2.5, fill: se.color}));
      }
      run = [];
    };
    for (const [t, v] of pts) {
      if (v === null || !Number.isFinite(v)) {
        flush();
        continue;
      }
      any = true;
      run.push([X(t), Y(v)]);
    }
    flush();
    const last = [...pts].reverse().find(([, v]) => v !== null && Number.isFinite(v));
    if (last) lines.append(s('circle', {cx: X(last[0]).toFixed(1), cy: Y(last[1]).toFixed(1), r: 3.5, fill: se.color}));
  }
  svg.append(lines);
  if (!any) {
    svg.append(s('text', {class: 'nodata', x: M.left + pw / 2, y: M.top + ph / 2, 'text-anchor': 'middle'},
      series.length ? 'waiting for requests…' : 'no deployments'));
  }
  return svg;
}
