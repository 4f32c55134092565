// keyplane console: draws the activity chart from the page's JSON block with uPlot (served locally).
'use strict';
(() => {
  const el = document.getElementById('chart');
  const data = document.getElementById('chart-data');
  if (!el || !data || typeof uPlot === 'undefined') return;
  const chart = JSON.parse(data.textContent);
  const outcomes = [
    ['valid', '#116329'],
    ['invalid', '#6e7781'],
    ['denied', '#a40e26'],
    ['scope', '#8250df'],
    ['cap_exceeded', '#bc4c00'],
  ];
  const xs = chart.buckets.map((b) => Date.parse(b) / 1000);
  const series = [{}].concat(outcomes.map(([name, stroke]) => ({ label: name, stroke, width: 2, points: { show: true } })));
  const width = () => Math.max(280, el.clientWidth);
  const plot = new uPlot({ width: width(), height: 260, series, scales: { x: { time: true } }, axes: [{}, { label: 'verifications' }] }, [xs].concat(outcomes.map(([name]) => chart.series[name])), el);
  el.setAttribute('data-total', String(outcomes.reduce((sum, [name]) => sum + chart.series[name].reduce((a, b) => a + b, 0), 0)));
  window.addEventListener('resize', () => plot.setSize({ width: width(), height: 260 }));
})();
