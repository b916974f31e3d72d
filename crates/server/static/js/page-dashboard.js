// The dashboard's charts, drawn with the vendored Chart.js from figures the server rendered into
// the page (the same figures are in the tables below the charts).
const data = JSON.parse(document.getElementById('dashboard').dataset.charts);
const { Chart } = window;
const COLOURS = ['#1a7f37', '#b58100', '#c62828'];

Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;

new Chart(document.getElementById('chart-colours'), {
  type: 'bar',
  data: { labels: data.colours.labels, datasets: [{ data: data.colours.values, backgroundColor: COLOURS }] },
  options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
});

new Chart(document.getElementById('chart-scans'), {
  type: 'line',
  data: {
    labels: data.scans.labels,
    datasets: [{ label: data.scans.label, data: data.scans.values, borderColor: '#1f4e9c', backgroundColor: '#1f4e9c', tension: 0.2 }],
  },
  options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
});

new Chart(document.getElementById('chart-cases'), {
  type: 'bar',
  data: {
    labels: data.cases.labels,
    datasets: [
      { label: data.cases.cases_label, data: data.cases.cases, backgroundColor: '#c62828' },
      { label: data.cases.exposures_label, data: data.cases.exposures, backgroundColor: '#b58100' },
    ],
  },
  options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
});
