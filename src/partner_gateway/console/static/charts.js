// The statistics page's charts, from the figures the page embeds (the same as its table). Without
// Chart.js (not installed) the page says so and the table stays the whole answer.
"use strict";
(function () {
  const data = document.getElementById("stats-data");
  if (!data) return;
  if (typeof window.Chart === "undefined") {
    document.getElementById("charts-unavailable").hidden = false;
    document.getElementById("charts").hidden = true;
    return;
  }
  const figures = JSON.parse(data.textContent);
  const labels = figures.buckets.map(function (bucket) {
    return figures.bucket === "hour" ? bucket.start.slice(5, 16).replace("T", " ") : bucket.start.slice(0, 10);
  });
  const colours = { UNKNOWN: "#6b7280", SENT: "#0b5cad", DELIVERED: "#17602c", RECEIVED: "#5b2a86", ERROR: "#a4161a", EXPIRED: "#b45309" };
  function sum(bucket, pick) {
    return bucket.channels.reduce(function (total, row) { return total + (pick(row) || 0); }, 0);
  }
  const counts = Object.keys(colours).map(function (status) {
    return { label: status, backgroundColor: colours[status], data: figures.buckets.map(function (b) { return sum(b, function (row) { return row.counts[status]; }); }) };
  });
  const rate = figures.buckets.map(function (bucket) {
    const final = sum(bucket, function (row) { return (row.counts.DELIVERED || 0) + (row.counts.ERROR || 0) + (row.counts.EXPIRED || 0); });
    return final ? (100 * sum(bucket, function (row) { return row.counts.DELIVERED; })) / final : null;
  });
  function worst(bucket, key) {
    const values = bucket.channels.map(function (row) { return row.latencyMs[key]; }).filter(function (v) { return v != null; });
    return values.length ? Math.max.apply(null, values) : null;
  }
  const common = { responsive: true, animation: false, maintainAspectRatio: true };
  new window.Chart(document.getElementById("chart-counts"), {
    type: "bar", data: { labels: labels, datasets: counts },
    options: Object.assign({}, common, { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } }),
  });
  new window.Chart(document.getElementById("chart-rate"), {
    type: "line", data: { labels: labels, datasets: [{ label: "Delivered %", data: rate, borderColor: "#17602c", spanGaps: true }] },
    options: Object.assign({}, common, { scales: { y: { min: 0, max: 100 } } }),
  });
  new window.Chart(document.getElementById("chart-latency"), {
    type: "line",
    data: { labels: labels, datasets: [
      { label: "p50 (slowest channel)", data: figures.buckets.map(function (b) { return worst(b, "p50"); }), borderColor: "#0b5cad", spanGaps: true },
      { label: "p95 (slowest channel)", data: figures.buckets.map(function (b) { return worst(b, "p95"); }), borderColor: "#a4161a", spanGaps: true },
    ] },
    options: Object.assign({}, common, { scales: { y: { beginAtZero: true } } }),
  });
})();
