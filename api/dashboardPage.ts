// The dashboard page, whole: HTML, CSS and script inline, no external resource (the
// replicas may run where nothing else is reachable). The script builds the DOM with
// textContent only (ids come from clients), and marks what it shows with data-*
// attributes (data-replica, data-state, data-link, data-lag...) so a test can compare
// the page with GET /cluster. No backquote and no dollar-brace below: this is a
// template string.
export const dashboardPage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>escrow-shop dashboard</title>
<style>
  :root { --bg: #f6f7f9; --card: #fff; --ink: #1d2330; --muted: #69707d; --line: #e3e6eb; --ok: #2e8b57; --bad: #c0392b; --warn: #d48806; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink); }
  header { display: flex; align-items: baseline; gap: 16px; flex-wrap: wrap; padding: 14px 24px; background: #1d2330; color: #fff; }
  header h1 { font-size: 18px; margin: 0; font-weight: 600; }
  header .muted { color: #b7bdc8; }
  main { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; padding: 16px 24px; }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 15px; margin: 0 0 8px; font-weight: 600; }
  h2 small { color: var(--muted); font-weight: 400; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--muted); font-weight: 500; font-size: 12px; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; }
  .badge.ok, .badge.active, .badge.up, .badge.self { background: var(--ok); }
  .badge.bad, .badge.down, .badge.retired { background: var(--bad); }
  .badge.draining, .badge.warn, .badge.never { background: var(--warn); }
  .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
  .bar { display: flex; height: 14px; width: 220px; border-radius: 3px; overflow: hidden; background: var(--line); }
  .bar span { display: block; height: 100%; }
  .spread { color: var(--muted); font-size: 12px; }
  .legend { display: flex; gap: 16px; color: var(--muted); font-size: 12px; margin-top: 4px; }
  #error { color: var(--bad); margin: 0 24px; min-height: 1em; }
  svg text { font-size: 11px; fill: var(--muted); }
</style>
</head>
<body>
<header>
  <h1>escrow-shop</h1>
  <span>served by <b id="served-by">?</b></span>
  <span id="readiness" class="badge warn">loading</span>
  <span class="muted">updated <span id="updated">never</span></span>
</header>
<p id="error"></p>
<main>
  <section class="wide">
    <h2>Replicas <small>as <span id="viewer">?</span> sees them: members, states, and its own links</small></h2>
    <table id="replicas">
      <thead><tr><th>replica</th><th>state</th><th>link from here</th><th>lagging</th><th class="num">lag (batches)</th><th class="num">acked / sent</th><th>HTTP</th><th>actor</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section class="wide">
    <h2>Requests and checkouts per second <small>at <span id="chart-replica">?</span>, last <span id="chart-seconds">60</span> s</small></h2>
    <svg id="rates" viewBox="0 0 900 200" width="100%" height="200" preserveAspectRatio="none" role="img" aria-label="requests and checkouts per second"></svg>
    <div class="legend">
      <span><i class="swatch" style="background:#4e79a7"></i>requests/s <b id="rate-requests">0</b></span>
      <span><i class="swatch" style="background:#2e8b57"></i>checkouts ok/s <b id="rate-ok">0</b></span>
      <span><i class="swatch" style="background:#c0392b"></i>checkouts refused/s <b id="rate-refused">0</b></span>
    </div>
  </section>
  <section>
    <h2>Hottest items <small>by checkouts here; stock rights per replica</small></h2>
    <table id="hot-items"><thead><tr><th>item</th><th class="num">checkouts</th><th class="num">stock</th><th>rights per replica</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Hottest users <small>by checkouts here; credit rights per replica</small></h2>
    <table id="hot-users"><thead><tr><th>user</th><th class="num">checkouts</th><th class="num">credit</th><th>rights per replica</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
"use strict";
var pollMs = 1000;
/** Samples kept; the chart spans them (at least shownMsMin), up to this long. */
var windowMs = 60000;
var shownMsMin = 10000;
var palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
var previous = null;
var samples = [];

function colorOf(replicaId) {
  var match = /^r(\\d+)$/.exec(replicaId);
  var index = 0;
  if (match) index = Number(match[1]) - 1;
  else for (var i = 0; i < replicaId.length; i++) index = (index * 31 + replicaId.charCodeAt(i)) >>> 0;
  return palette[index % palette.length];
}

function node(tag, attributes, children) {
  var element = document.createElement(tag);
  var names = Object.keys(attributes || {});
  for (var i = 0; i < names.length; i++) element.setAttribute(names[i], String(attributes[names[i]]));
  (children || []).forEach(function (child) {
    element.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  });
  return element;
}

function badge(text, kind) {
  return node("span", { class: "badge " + kind }, [text]);
}

function svgNode(tag, attributes) {
  var element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  Object.keys(attributes).forEach(function (name) { element.setAttribute(name, String(attributes[name])); });
  return element;
}

function replicaRows(cluster) {
  var rows = {};
  cluster.members.forEach(function (member) {
    rows[member.replicaId] = { replicaId: member.replicaId, state: member.state, httpAddress: member.httpAddress, actor: member.actor, peer: null };
  });
  cluster.peers.forEach(function (peer) {
    var row = rows[peer.replicaId] || (rows[peer.replicaId] = { replicaId: peer.replicaId, state: "unknown", httpAddress: "", actor: peer.actor, peer: null });
    row.peer = peer;
  });
  if (!rows[cluster.replicaId]) rows[cluster.replicaId] = { replicaId: cluster.replicaId, state: "active", httpAddress: "", actor: cluster.actor, peer: null };
  return Object.keys(rows).sort().map(function (id) { return rows[id]; });
}

function renderReplicas(cluster) {
  document.getElementById("viewer").textContent = cluster.replicaId;
  var body = node("tbody", {}, []);
  replicaRows(cluster).forEach(function (row) {
    var self = row.replicaId === cluster.replicaId;
    var link = self ? "self" : row.peer === null ? "never" : row.peer.up ? "up" : "down";
    var lagging = row.peer !== null && row.peer.lagging;
    var lag = row.peer === null ? 0 : row.peer.lag;
    body.appendChild(node("tr", { "data-replica": row.replicaId, "data-state": row.state, "data-link": link, "data-lagging": lagging, "data-lag": lag }, [
      node("td", {}, [node("i", { class: "swatch", style: "background:" + colorOf(row.replicaId) }, []), node("b", {}, [row.replicaId])]),
      node("td", {}, [badge(row.state, row.state)]),
      node("td", {}, [badge(link, link)]),
      node("td", {}, [self ? "" : lagging ? badge("lagging", "warn") : "no"]),
      node("td", { class: "num" }, [self ? "" : lag]),
      node("td", { class: "num" }, [row.peer === null ? (self ? "durable " + cluster.durableSeq : "") : row.peer.ackedSeq + " / " + row.peer.lastSentSeq]),
      node("td", {}, [row.httpAddress]),
      node("td", { class: "spread" }, [row.actor || ""]),
    ]));
  });
  var table = document.getElementById("replicas");
  table.replaceChild(body, table.tBodies[0]);
}

function renderHot(tableId, keys) {
  var body = node("tbody", {}, []);
  keys.forEach(function (hot) {
    var replicas = Object.keys(hot.rightsByReplica).sort();
    var total = replicas.reduce(function (sum, id) { return sum + Math.max(0, hot.rightsByReplica[id]); }, 0);
    var bar = node("div", { class: "bar", title: "rights per replica" }, []);
    var spread = [];
    replicas.forEach(function (id) {
      var rights = hot.rightsByReplica[id];
      spread.push(id + " " + rights);
      if (total > 0 && rights > 0) bar.appendChild(node("span", { "data-replica": id, "data-rights": rights, style: "width:" + (100 * rights / total) + "%;background:" + colorOf(id) }, []));
    });
    var counted = hot.overcount > 0 ? hot.count + " (≥ " + (hot.count - hot.overcount) + ")" : hot.count;
    body.appendChild(node("tr", { "data-key": hot.id }, [
      node("td", {}, [hot.id.length > 14 ? hot.id.slice(0, 13) + "…" : hot.id]),
      node("td", { class: "num" }, [counted]),
      node("td", { class: "num" }, [hot.value === undefined ? "-" : hot.value]),
      node("td", {}, [bar, node("div", { class: "spread" }, [spread.join(" · ") || "no rights"])]),
    ]));
  });
  if (keys.length === 0) body.appendChild(node("tr", {}, [node("td", { colspan: 4, class: "spread" }, ["no checkout seen here yet"])]));
  var table = document.getElementById(tableId);
  table.replaceChild(body, table.tBodies[0]);
}

function addSample(data) {
  if (previous !== null && previous.replicaId === data.replicaId && data.atMs > previous.atMs) {
    var seconds = (data.atMs - previous.atMs) / 1000;
    samples.push({
      atMs: data.atMs,
      requests: (data.totals.requests - previous.totals.requests) / seconds,
      ok: (data.totals.checkoutsOk - previous.totals.checkoutsOk) / seconds,
      refused: (data.totals.checkoutsRefused - previous.totals.checkoutsRefused) / seconds,
    });
  } else if (previous !== null && previous.replicaId !== data.replicaId) {
    samples = [];
  }
  previous = data;
  while (samples.length > 0 && samples[0].atMs < data.atMs - windowMs) samples.shift();
}

function renderChart(nowMs) {
  var svg = document.getElementById("rates");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  var width = 900, height = 200, left = 44, bottom = 18, top = 8;
  var shownMs = Math.min(windowMs, Math.max(shownMsMin, samples.length > 0 ? nowMs - samples[0].atMs : 0));
  document.getElementById("chart-seconds").textContent = String(Math.round(shownMs / 1000));
  var highest = 1;
  samples.forEach(function (sample) { highest = Math.max(highest, sample.requests, sample.ok, sample.refused); });
  var scale = Math.pow(10, Math.floor(Math.log10(highest)));
  var ceiling = Math.ceil(highest / scale) * scale;
  for (var step = 0; step <= 4; step++) {
    var y = top + (height - top - bottom) * (1 - step / 4);
    svg.appendChild(svgNode("line", { x1: left, x2: width, y1: y, y2: y, stroke: "#e3e6eb" }));
    var label = svgNode("text", { x: left - 6, y: y + 4, "text-anchor": "end" });
    label.textContent = String(Math.round(ceiling * step / 4 * 10) / 10);
    svg.appendChild(label);
  }
  [["requests", "#4e79a7"], ["ok", "#2e8b57"], ["refused", "#c0392b"]].forEach(function (series) {
    var points = samples.map(function (sample) {
      var x = left + (width - left) * (1 - (nowMs - sample.atMs) / shownMs);
      var y = top + (height - top - bottom) * (1 - sample[series[0]] / ceiling);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    if (points.length > 0) svg.appendChild(svgNode("polyline", { points: points.join(" "), fill: "none", stroke: series[1], "stroke-width": 2, "data-series": series[0] }));
  });
  var axis = svgNode("text", { x: left, y: height - 4 });
  axis.textContent = "-" + Math.round(shownMs / 1000) + " s";
  svg.appendChild(axis);
  var now = svgNode("text", { x: width - 4, y: height - 4, "text-anchor": "end" });
  now.textContent = "now";
  svg.appendChild(now);
  var last = samples[samples.length - 1] || { requests: 0, ok: 0, refused: 0 };
  document.getElementById("rate-requests").textContent = last.requests.toFixed(1);
  document.getElementById("rate-ok").textContent = last.ok.toFixed(1);
  document.getElementById("rate-refused").textContent = last.refused.toFixed(1);
}

function render(data) {
  document.getElementById("served-by").textContent = data.replicaId;
  document.getElementById("chart-replica").textContent = data.replicaId;
  var readiness = document.getElementById("readiness");
  readiness.textContent = data.ready ? "ready" : "not ready: " + data.notReadyReason;
  readiness.className = "badge " + (data.ready ? "ok" : "bad");
  document.getElementById("updated").textContent = new Date(data.atMs).toLocaleTimeString();
  renderReplicas(data.cluster);
  addSample(data);
  renderChart(data.atMs);
  renderHot("hot-items", data.hot.items);
  renderHot("hot-users", data.hot.users);
  document.body.setAttribute("data-updated-ms", String(data.atMs));
}

function poll() {
  fetch("/dashboard/data", { cache: "no-store" })
    .then(function (answer) {
      if (!answer.ok) throw new Error("/dashboard/data answered " + answer.status);
      return answer.json();
    })
    .then(function (data) {
      render(data);
      document.getElementById("error").textContent = "";
    })
    .catch(function (error) {
      document.getElementById("error").textContent = "cannot reach the replica: " + error.message;
    })
    .finally(function () { setTimeout(poll, pollMs); });
}
poll();
</script>
</body>
</html>
`;
