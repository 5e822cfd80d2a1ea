/* report_html.c — the report of `plait compare --html FILE`.
 *
 * The file is one self-contained HTML5 document: no network, no external fonts or
 * scripts, so it can be mailed, archived or opened offline years later.  Its layout:
 *
 *   <head>      the style sheet (light and dark colours, a print layout)
 *   <noscript>  one line: the report needs JavaScript
 *   <main>      empty; the renderer fills it
 *   <script type="application/json" id="plait-data">   the JSON of --json, verbatim
 *   <script>    the renderer, which draws from that data:
 *                 header     plait version, date, quick or full run, elapsed time, and
 *                            the machine (CPUs, CPU model, kernel, memory, I/O backend)
 *                 table      a row per metric, then a row per fact; a column per model;
 *                            values in readable units (95.2 ns, 4.1 KiB, 1.93x), the best
 *                            per metric row highlighted by its "better", "how" as the
 *                            row's tooltip and small text, "extra" figures named beneath
 *                 charts     an inline SVG per metric: a horizontal bar per measured model
 *                            (the same colour in every chart, see the legend) and per
 *                            "extra" figure (grey), on a log axis with ticks at powers of
 *                            ten or a linear one from 0, as the metric's "scale" says;
 *                            "not measured" where a value is null.  Every bar is a <rect>
 *                            with data-metric, data-series (the model id, or extra:N) and
 *                            data-value (the number as JSON.parse read it), which the
 *                            test (tests/compare_report.py) checks against the JSON
 *                 recommendations   work, the recommended model (or none), why
 *
 * Why the JSON is embedded and drawn by a script rather than written out as HTML by
 * this C: one source of truth.  The report shows exactly the numbers of --json (the
 * same text is in the file, only each '<' escaped), so the two cannot drift apart, and
 * this file needs no second formatter, no knowledge of the metrics and no HTML escaping
 * of each string.  The script also draws the charts at the width the window gives them,
 * and anyone can take the data back out of the report.
 *
 * Safety: the JSON goes in with every '<' written as \u003c, which is the same string
 * to JSON.parse but cannot close the <script> element (a "</script>" inside a string)
 * or open a comment.  The renderer puts every string of the data into the page as a
 * text node or an attribute value (createTextNode, setAttribute), never as HTML.
 *
 * The page's text is kept below as C string literals, a line of the page per line of
 * C, in pieces of under 4 KiB each (the length ISO C asks compilers to accept). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tool.h"

/* Everything before the data: the head with its style sheet, <noscript>, <main>. */
static const char *const page_before[] = {
    /* the document head */
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<meta name=\"generator\" content=\"plait compare\">\n"
    "<title>plait compare</title>\n",
    /* the style sheet: colours (light, dark), page, header */
    "<style>\n"
    ":root {\n"
    "  --bg: #f5f6f8; --card: #fff; --fg: #1c2230; --muted: #5b6475; --line: #dde1e8;\n"
    "  --grid: #e9ecf1; --best: #e2f5ea; --best-fg: #0a6b3d;\n"
    "  --c0: #139a74; --c1: #3367d6; --c2: #d5601c; --cx: #8e96a4;\n"
    "  color-scheme: light dark;\n"
    "}\n"
    "@media (prefers-color-scheme: dark) {\n"
    "  :root {\n"
    "    --bg: #15181d; --card: #1d2128; --fg: #e5e8ee; --muted: #9aa3b3; --line: #2f353f;\n"
    "    --grid: #2a3039; --best: #183a2b; --best-fg: #86dfb1;\n"
    "    --c0: #2bb38b; --c1: #5b8cf0; --c2: #ec7a36; --cx: #7d8594;\n"
    "  }\n"
    "}\n"
    "* { box-sizing: border-box; }\n"
    "body {\n"
    "  margin: 0; background: var(--bg); color: var(--fg);\n"
    "  font: 15px/1.5 system-ui, -apple-system, \"Segoe UI\", Roboto, \"Helvetica Neue\", Arial, sans-serif;\n"
    "}\n"
    "main { max-width: 1120px; margin: 0 auto; padding: 28px 20px 48px; }\n"
    "h1 { margin: 0; font-size: 28px; line-height: 1.2; letter-spacing: -0.01em; }\n"
    "h2 { margin: 0 0 12px; font-size: 20px; }\n"
    "h3 { margin: 0; font-size: 16px; }\n"
    "a { color: var(--c1); }\n"
    ".lede { margin: 4px 0 18px; color: var(--muted); }\n"
    "section { margin-top: 36px; }\n"
    ".card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; }\n"
    ".meta { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 340px), 1fr)); gap: 16px; }\n"
    ".meta .card { padding: 12px 16px; }\n"
    ".meta h2 { margin: 0 0 6px; font-size: 13px; color: var(--muted); text-transform: uppercase; letter-spacing: 0.05em; }\n"
    ".meta dl { margin: 0; }\n"
    ".meta dl div { display: grid; grid-template-columns: 8.5em 1fr; gap: 12px; padding: 3px 0; border-top: 1px solid var(--grid); }\n"
    ".meta dl div:first-child { border-top: 0; }\n"
    ".meta dt { color: var(--muted); }\n"
    ".meta dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }\n",
    /* the style sheet: table, charts, recommendations */
    ".table-wrap { overflow-x: auto; }\n"
    "table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }\n"
    "th, td { padding: 10px 14px; text-align: left; vertical-align: top; border-bottom: 1px solid var(--line); }\n"
    "thead th { font-size: 13px; color: var(--muted); font-weight: 600; white-space: nowrap; }\n"
    "thead th.model { text-align: right; color: var(--fg); }\n"
    "tbody th { font-weight: normal; min-width: 14em; }\n"
    "td.num { text-align: right; white-space: nowrap; }\n"
    "td.fact { text-align: left; min-width: 8em; }\n"
    "td.best { background: var(--best); color: var(--best-fg); font-weight: 700; }\n"
    "tbody.facts tr:first-child > * { border-top: 2px solid var(--line); }\n"
    "table > tbody:last-child > tr:last-child > * { border-bottom: 0; }\n"
    ".rt { font-weight: 600; }\n"
    ".dir { font-size: 11.5px; color: var(--muted); white-space: nowrap; }\n"
    ".how, .also { font-size: 12.5px; color: var(--muted); margin-top: 2px; }\n"
    ".nm { color: var(--muted); font-style: italic; font-weight: normal; }\n"
    ".swatch { display: inline-block; width: 11px; height: 11px; border-radius: 3px; margin-right: 6px; }\n"
    ".swatch.s-0, .chip.s-0 { background: var(--c0); }\n"
    ".swatch.s-1, .chip.s-1 { background: var(--c1); }\n"
    ".swatch.s-2, .chip.s-2 { background: var(--c2); }\n"
    ".swatch.s-x, .chip.s-x { background: var(--cx); }\n"
    ".legend { display: flex; flex-wrap: wrap; gap: 6px 20px; margin: 0 0 12px; padding: 0; list-style: none; }\n"
    ".charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 480px), 1fr)); gap: 16px; }\n"
    "figure.chart { margin: 0; padding: 14px 16px 8px; min-width: 0; }\n"
    ".chart .sub { margin: 2px 0 8px; font-size: 12.5px; color: var(--muted); }\n"
    ".plot svg { display: block; width: 100%; height: auto; }\n"
    "svg text { fill: var(--fg); font-size: 12px; }\n"
    "svg text.tick { fill: var(--muted); font-size: 11px; }\n"
    "svg text.val { font-weight: 600; }\n"
    "svg text.val.best { fill: var(--best-fg); }\n"
    "svg text.nm { fill: var(--muted); }\n"
    "svg line.grid { stroke: var(--grid); }\n"
    "svg line.axis { stroke: var(--muted); }\n"
    "rect.s-0 { fill: var(--c0); }\n"
    "rect.s-1 { fill: var(--c1); }\n"
    "rect.s-2 { fill: var(--c2); }\n"
    "rect.s-x { fill: var(--cx); }\n"
    ".recs { list-style: none; margin: 0; padding: 0; display: grid; gap: 12px; }\n"
    ".recs li { padding: 14px 16px; display: grid; grid-template-columns: 1fr auto; gap: 6px 16px; align-items: center; }\n"
    ".recs .work { font-weight: 600; }\n"
    ".recs .why { grid-column: 1 / -1; margin: 0; }\n"
    ".chip { display: inline-block; padding: 2px 12px; border-radius: 999px; font-size: 13px; font-weight: 700; color: #fff; white-space: nowrap; }\n"
    ".chip.none { background: transparent; color: var(--muted); border: 1px solid var(--line); }\n"
    ".error { padding: 14px 16px; border: 1px solid #d33; border-radius: 8px; color: #a11; background: #fff3f3; }\n"
    "footer { margin-top: 40px; font-size: 12.5px; color: var(--muted); }\n"
    "code { font-family: ui-monospace, \"SFMono-Regular\", Menlo, Consolas, monospace; font-size: 0.95em; }\n",
    /* the style sheet: narrow screens, print */
    "@media (max-width: 600px) {\n"
    "  main { padding: 18px 12px 32px; }\n"
    "  th, td { padding: 8px 8px; }\n"
    "  tbody th { min-width: 10em; }\n"
    "}\n"
    "@media print {\n"
    "  :root {\n"
    "    --bg: #fff; --card: #fff; --fg: #000; --muted: #444; --line: #bbb; --grid: #ddd;\n"
    "    --best: #e2f5ea; --best-fg: #0a6b3d; --c0: #139a74; --c1: #3367d6; --c2: #d5601c; --cx: #8e96a4;\n"
    "    color-scheme: light;\n"
    "  }\n"
    "  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }\n"
    "  body { font-size: 10.5pt; }\n"
    "  main { max-width: none; padding: 0; }\n"
    "  section { margin-top: 20px; }\n"
    "  tr, figure.chart, .recs li, .meta .card { break-inside: avoid; }\n"
    "  h2 { break-after: avoid; }\n"
    "}\n"
    "</style>\n",
    /* the body: <noscript>, and <main> for the renderer */
    "</head>\n"
    "<body>\n"
    "<noscript><p class=\"error\">This report needs JavaScript: its script draws the tables and charts\n"
    "from the comparison data embedded in this file.</p></noscript>\n"
    "<main id=\"report\"></main>\n"
};

/* Everything after the data: the renderer, and the end of the document. */
static const char *const page_after[] = {
    /* the renderer: building elements, number formats */
    "<script>\n"
    "(() => {\n"
    "  'use strict';\n"
    "  const SVGNS = 'http://www.w3.org/2000/svg';\n"
    "  const root = document.getElementById('report');\n"
    "\n"
    "  // Elements are built with createElement and text nodes only: no string from the\n"
    "  // data is ever parsed as HTML.\n"
    "  function put(e, attrs, kids) {\n"
    "    for (const k in attrs || {}) {\n"
    "      if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, String(attrs[k]));\n"
    "    }\n"
    "    for (const c of [].concat(kids === undefined ? [] : kids)) {\n"
    "      if (c === null || c === undefined || c === false) continue;\n"
    "      e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));\n"
    "    }\n"
    "    return e;\n"
    "  }\n"
    "  const h = (tag, attrs, kids) => put(document.createElement(tag), attrs, kids);\n"
    "  const s = (tag, attrs, kids) => put(document.createElementNS(SVGNS, tag), attrs, kids);\n"
    "  const txt = (v) => (v === null || v === undefined || v === '') ? '\\u2014' : String(v);\n"
    "  const has = (o, k) => o !== null && typeof o === 'object' && Object.prototype.hasOwnProperty.call(o, k);\n"
    "  const get = (o, k) => has(o, k) ? o[k] : null;\n"
    "  const list = (v) => Array.isArray(v) ? v : [];\n"
    "  const fail = (msg) => { root.replaceChildren(h('p', {class: 'error'}, msg)); };\n"
    "\n"
    "  // Numbers in readable units: 3 significant digits, the largest unit that keeps the\n"
    "  // figure at 1 or more (95.2 ns, 21.3 µs, 4.1 KiB, 1.93x).\n"
    "  const TIME_IN = {ns: 1, us: 1e3, '\\u00b5s': 1e3, ms: 1e6, s: 1e9};\n"
    "  const TIME = [['ns', 1], ['\\u00b5s', 1e3], ['ms', 1e6], ['s', 1e9]];\n"
    "  const BYTES = [['B', 1], ['KiB', 1024], ['MiB', 1048576], ['GiB', 1073741824], ['TiB', 1099511627776]];\n"
    "  const BYTES_SI = [['B', 1], ['kB', 1e3], ['MB', 1e6], ['GB', 1e9], ['TB', 1e12]];\n"
    "  const r3 = (x) => Number(x.toPrecision(3));\n"
    "  function num(x) {\n"
    "    if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');\n"
    "    return String(r3(x));\n"
    "  }\n"
    "  function scaled(v, units) {\n"
    "    let i = 0;\n"
    "    while (i + 1 < units.length && Math.abs(r3(v / units[i + 1][1])) >= 1) i++;\n"
    "    return num(v / units[i][1]) + '\\u00a0' + units[i][0];\n"
    "  }\n"
    "  // tick: a label on a log axis at a power of ten, where bytes read better as kB, MB.\n"
    "  function fmt(v, unit, tick) {\n"
    "    if (v === null || v === undefined) return 'not measured';\n"
    "    if (typeof v !== 'number' || !isFinite(v)) return String(v);\n"
    "    if (has(TIME_IN, unit)) return scaled(v * TIME_IN[unit], TIME);\n"
    "    if (unit === 'bytes' || unit === 'B') return scaled(v, tick ? BYTES_SI : BYTES);\n"
    "    if (unit === 'x' || unit === '%') return num(v) + unit;\n"
    "    if (!unit) return num(v);\n"
    "    return num(v) + '\\u00a0' + unit;\n"
    "  }\n"
    "  const exact = (v, unit) => String(v) + (unit ? ' ' + unit : '');\n"
    "\n",
    /* the renderer: reading the data */
    "  let data;\n"
    "  try {\n"
    "    data = JSON.parse(document.getElementById('plait-data').textContent);\n"
    "  } catch (err) {\n"
    "    fail('The comparison data embedded in this file could not be read: ' + err.message);\n"
    "    return;\n"
    "  }\n"
    "  if (get(data, 'format') !== 'plait-compare/1') {\n"
    "    fail('The data embedded in this file is not in the format plait-compare/1.');\n"
    "    return;\n"
    "  }\n"
    "  const models = list(data.models), metrics = list(data.metrics);\n"
    "  const facts = list(data.facts), recs = list(data.recommendations);\n"
    "  const machine = get(data, 'machine') || {};\n"
    "  const colour = {};\n"
    "  models.forEach((md, i) => { colour[md.id] = 's-' + (i % 3); });\n"
    "  const nameOf = (id) => { const md = models.find((x) => x.id === id); return txt(md ? md.name : id); };\n"
    "\n"
    "  // The best model value of a metric row (ties: each is best), or null with fewer\n"
    "  // than two values to compare.\n"
    "  function best(m) {\n"
    "    const vals = models.map((md) => get(m.values, md.id)).filter((v) => typeof v === 'number');\n"
    "    if (vals.length < 2) return null;\n"
    "    if (m.better === 'lower') return Math.min(...vals);\n"
    "    if (m.better === 'higher') return Math.max(...vals);\n"
    "    return null;\n"
    "  }\n"
    "\n",
    /* the renderer: header */
    "  // ---- header\n"
    "  const when = typeof data.started === 'string' ? data.started.replace('T', ' ').replace(/Z$/, ' UTC') : txt(data.started);\n"
    "  const kind = data.quick ? 'quick' : 'full';\n"
    "  document.title = 'plait compare \\u2014 ' + when;\n"
    "  const rowsOf = (pairs) => pairs.map(([k, v]) => h('div', null, [h('dt', null, k), h('dd', null, v)]));\n"
    "  root.appendChild(h('header', null, [\n"
    "    h('h1', null, 'Coroutines, threads and processes on this machine'),\n"
    "    h('p', {class: 'lede'}, 'What each way of running work concurrently costs here, measured by plait compare.'),\n"
    "    h('div', {class: 'meta'}, [\n"
    "      h('div', {class: 'card'}, [h('h2', null, 'Run'), h('dl', null, rowsOf([\n"
    "        ['plait version', txt(data.plait_version)],\n"
    "        ['date', when],\n"
    "        ['kind', kind],\n"
    "        ['elapsed', fmt(data.elapsed_s, 's')],\n"
    "      ]))]),\n"
    "      h('div', {class: 'card'}, [h('h2', null, 'Machine'), h('dl', null, rowsOf([\n"
    "        ['CPUs', txt(machine.cpus)],\n"
    "        ['CPU model', machine.cpu_model ? machine.cpu_model : 'unknown'],\n"
    "        ['kernel', txt(machine.kernel)],\n"
    "        ['memory', typeof machine.memory_bytes === 'number' ? fmt(machine.memory_bytes, 'bytes') : txt(machine.memory_bytes)],\n"
    "        ['I/O backend', txt(machine.io_backend)],\n"
    "      ]))]),\n"
    "    ]),\n"
    "  ]));\n"
    "\n",
    /* the renderer: table */
    "  // ---- table: a row per metric, then a row per fact; a column per model\n"
    "  const head = h('tr', null, [h('th', {scope: 'col'}, 'measure')].concat(models.map((md) =>\n"
    "    h('th', {scope: 'col', class: 'model'}, [h('span', {class: 'swatch ' + colour[md.id]}), txt(md.name)]))));\n"
    "  const mbody = h('tbody', {class: 'metrics'}), fbody = h('tbody', {class: 'facts'});\n"
    "  for (const m of metrics) {\n"
    "    const b = best(m);\n"
    "    const extras = list(m.extra).map((x) => txt(get(x, 'label')) + ' ' + fmt(get(x, 'value'), m.unit));\n"
    "    const row = h('tr', {'data-row': 'metric', 'data-id': m.id, title: m.how}, h('th', {scope: 'row'}, [\n"
    "      h('div', null, [h('span', {class: 'rt'}, txt(m.title)), ' ',\n"
    "        h('span', {class: 'dir'}, m.better === 'higher' ? '\\u2191 higher is better' : '\\u2193 lower is better')]),\n"
    "      m.how ? h('div', {class: 'how'}, m.how) : null,\n"
    "      extras.length ? h('div', {class: 'also'}, 'also: ' + extras.join('; ')) : null,\n"
    "    ]));\n"
    "    for (const md of models) {\n"
    "      const v = get(m.values, md.id);\n"
    "      const isBest = b !== null && v === b;\n"
    "      row.appendChild(v === null\n"
    "        ? h('td', {class: 'num nm'}, 'not measured')\n"
    "        : h('td', {class: 'num' + (isBest ? ' best' : ''), title: exact(v, m.unit) + (isBest ? ' (best)' : '')}, fmt(v, m.unit)));\n"
    "    }\n"
    "    mbody.appendChild(row);\n"
    "  }\n"
    "  for (const f of facts) {\n"
    "    const row = h('tr', {'data-row': 'fact', 'data-id': f.id, title: f.how}, h('th', {scope: 'row'}, [\n"
    "      h('div', {class: 'rt'}, txt(f.title)), f.how ? h('div', {class: 'how'}, f.how) : null]));\n"
    "    for (const md of models) row.appendChild(h('td', {class: 'fact'}, txt(get(f.values, md.id))));\n"
    "    fbody.appendChild(row);\n"
    "  }\n"
    "  root.appendChild(h('section', {id: 'table'}, [h('h2', null, 'Comparison'),\n"
    "    h('div', {class: 'card table-wrap'}, h('table', {id: 'plait-table'}, [h('thead', null, head), mbody, fbody]))]));\n"
    "\n",
    /* the renderer: charts */
    "  // ---- charts: one per metric, a horizontal bar per model value and per extra figure\n"
    "  function niceStep(raw) {\n"
    "    const p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p;\n"
    "    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * p;\n"
    "  }\n"
    "  function clip(label, width) {\n"
    "    const n = Math.max(4, Math.floor(width / 7));\n"
    "    return label.length > n ? label.slice(0, n - 1) + '\\u2026' : label;\n"
    "  }\n",
    /* the renderer: a chart */
    "  function chart(m, W) {\n"
    "    const log = m.scale === 'log';\n"
    "    const rows = models.map((md) => ({series: md.id, label: txt(md.name), value: get(m.values, md.id), cls: colour[md.id]}));\n"
    "    list(m.extra).forEach((x, i) => rows.push({series: 'extra:' + i, label: txt(get(x, 'label')), value: get(x, 'value'), cls: 's-x'}));\n"
    "    const drawable = (v) => typeof v === 'number' && isFinite(v) && (log ? v > 0 : v >= 0);\n"
    "    const vals = rows.filter((r) => drawable(r.value)).map((r) => r.value);\n"
    "    const b = best(m);\n"
    "    const texts = rows.map((r) => drawable(r.value) ? fmt(r.value, m.unit) : '');\n"
    "    const labelW = Math.round(Math.min(Math.max(...rows.map((r) => r.label.length)) * 7 + 18, W * 0.36));\n"
    "    const valueW = Math.round(Math.min(Math.max(...texts.map((t) => t.length)) * 7.5 + 30, W * 0.3));\n"
    "    const x0 = labelW, x1 = Math.max(W - valueW, x0 + 40);\n"
    "    const rowH = 30, barH = 18, top = 4, axisH = vals.length ? 24 : 0;\n"
    "    const bottom = top + rows.length * rowH, H = bottom + axisH;\n"
    "    const ticks = [];\n"
    "    let pos = null;\n"
    "    if (vals.length && log) {\n"
    "      // Powers of ten around the values; the smallest bar spans at least a quarter decade.\n"
    "      const a = Math.floor(Math.log10(Math.min(...vals)) - 0.25);\n"
    "      const z = Math.max(Math.ceil(Math.log10(Math.max(...vals))), a + 1);\n"
    "      pos = (v) => x0 + (Math.log10(v) - a) / (z - a) * (x1 - x0);\n"
    "      const every = Math.ceil((z - a) / Math.max(2, Math.floor((x1 - x0) / 48)));\n"
    "      for (let e = a; e <= z; e++) ticks.push({v: Number('1e' + e), label: (z - e) % every === 0});\n"
    "    } else if (vals.length) {\n"
    "      const top0 = Math.max(...vals), step = top0 > 0 ? niceStep(top0 / 4) : 1;\n"
    "      const n = Math.max(1, Math.ceil(top0 / step - 1e-9));\n"
    "      pos = (v) => x0 + v / (n * step) * (x1 - x0);\n"
    "      const every = Math.ceil((n + 1) / Math.max(2, Math.floor((x1 - x0) / 48)));\n"
    "      for (let i = 0; i <= n; i++) ticks.push({v: Number((i * step).toPrecision(12)), label: i % every === 0});\n"
    "    }\n"
    "    const svg = s('svg', {viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', 'aria-label': txt(m.title)});\n"
    "    for (const t of ticks) {\n"
    "      const x = pos(t.v);\n"
    "      svg.appendChild(s('line', {class: 'grid', x1: x, x2: x, y1: top, y2: bottom}));\n"
    "      if (t.label) svg.appendChild(s('text', {class: 'tick', x: x, y: H - 6, 'text-anchor': 'middle'}, fmt(t.v, m.unit, true)));\n"
    "    }\n"
    "    svg.appendChild(s('line', {class: 'axis', x1: x0, x2: x0, y1: top, y2: bottom}));\n"
    "    rows.forEach((r, i) => {\n"
    "      const y = top + i * rowH + (rowH - barH) / 2, cy = y + barH / 2;\n"
    "      const shown = clip(r.label, labelW - 14);\n"
    "      svg.appendChild(s('text', {class: 'label', x: x0 - 8, y: cy, dy: '0.35em', 'text-anchor': 'end'},\n"
    "        [shown, shown !== r.label ? s('title', null, r.label) : null]));\n"
    "      if (drawable(r.value)) {\n"
    "        const w = Math.max(0, pos(r.value) - x0);\n"
    "        const isBest = b !== null && r.value === b && !r.series.startsWith('extra:');\n"
    "        svg.appendChild(s('rect', {class: 'bar ' + r.cls, x: x0, y: y, width: Math.round(w * 1000) / 1000, height: barH, rx: 3,\n"
    "          'data-metric': m.id, 'data-series': r.series, 'data-value': String(r.value)},\n"
    "          s('title', null, r.label + ': ' + texts[i] + ' (' + exact(r.value, m.unit) + ')')));\n"
    "        svg.appendChild(s('text', {class: 'val' + (isBest ? ' best' : ''), x: x0 + w + 6, y: cy, dy: '0.35em'},\n"
    "          texts[i] + (isBest ? ' \\u2713' : '')));\n"
    "      } else {\n"
    "        svg.appendChild(s('text', {class: 'nm', x: x0 + 8, y: cy, dy: '0.35em', 'data-metric': m.id, 'data-series': r.series},\n"
    "          r.value === null ? 'not measured' : 'cannot be drawn: ' + String(r.value)));\n"
    "      }\n"
    "    });\n"
    "    return svg;\n"
    "  }\n",
    /* the renderer: legend, drawing the charts */
    "  const legend = h('ul', {class: 'legend'}, models.map((md) => h('li', null, [h('span', {class: 'swatch ' + colour[md.id]}), txt(md.name)])));\n"
    "  if (metrics.some((m) => list(m.extra).length)) {\n"
    "    legend.appendChild(h('li', null, [h('span', {class: 'swatch s-x'}), 'other figures (named on the bar)']));\n"
    "  }\n"
    "  const grid = h('div', {class: 'charts'});\n"
    "  const drawn = [];\n"
    "  for (const m of metrics) {\n"
    "    const box = h('div', {class: 'plot'});\n"
    "    grid.appendChild(h('figure', {class: 'chart card', 'data-metric': m.id, title: m.how}, [\n"
    "      h('figcaption', null, [h('h3', null, txt(m.title)), h('p', {class: 'sub'},\n"
    "        (m.better === 'higher' ? 'higher is better' : 'lower is better') + ' \\u00b7 ' +\n"
    "        (m.scale === 'log' ? 'log scale' : 'linear scale'))]),\n"
    "      box]));\n"
    "    drawn.push({box: box, m: m, w: -1});\n"
    "  }\n"
    "  root.appendChild(h('section', {id: 'charts'}, [h('h2', null, 'Charts'), legend, grid]));\n"
    "  // Drawn at the width they get, so text keeps its size; again when the window resizes.\n"
    "  function draw() {\n"
    "    for (const d of drawn) {\n"
    "      const w = Math.round(d.box.clientWidth) || 600;\n"
    "      if (w !== d.w) { d.w = w; d.box.replaceChildren(chart(d.m, Math.max(w, 280))); }\n"
    "    }\n"
    "  }\n"
    "  draw();\n"
    "  let timer = 0;\n"
    "  window.addEventListener('resize', () => { clearTimeout(timer); timer = setTimeout(draw, 100); });\n"
    "\n",
    /* the renderer: recommendations */
    "  // ---- recommendations\n"
    "  const ol = h('ol', {class: 'recs'});\n"
    "  for (const r of recs) {\n"
    "    const pick = r.model === null || r.model === undefined\n"
    "      ? h('span', {class: 'chip none'}, 'none')\n"
    "      : h('span', {class: 'chip ' + (colour[r.model] || 's-x')}, nameOf(r.model));\n"
    "    ol.appendChild(h('li', {class: 'card'}, [h('div', {class: 'work'}, txt(r.work)), pick, h('p', {class: 'why'}, txt(r.why))]));\n"
    "  }\n"
    "  root.appendChild(h('section', {id: 'recommendations'}, [h('h2', null, 'Recommendations'), ol]));\n"
    "  root.appendChild(h('footer', null, 'Generated by plait ' + txt(data.plait_version) +\n"
    "    ' (plait compare --html). The figures are those of plait compare --json, embedded in this file and drawn by its script.'));\n"
    "})();\n"
    "</script>\n"
    "</body>\n"
    "</html>\n"
};

/* Writes n bytes; 0, or -errno. */
static int put(FILE *out, const char *p, size_t n)
{
    errno = 0;
    if (n > 0 && fwrite(p, 1, n, out) != n)
        return errno ? -errno : -EIO;
    return 0;
}

static int put_all(FILE *out, const char *const *parts, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        int rc = put(out, parts[i], strlen(parts[i]));
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The JSON text with each '<' as \u003c (only inside strings can valid JSON hold one). */
static int put_json(FILE *out, const char *json)
{
    static const char start[] = "<script type=\"application/json\" id=\"plait-data\">\n";
    static const char end[] = "\n</script>\n";
    int rc = put(out, start, sizeof start - 1);
    while (rc == 0 && *json) {
        size_t n = strcspn(json, "<");
        rc = put(out, json, n);
        json += n;
        if (rc == 0 && *json == '<') {
            rc = put(out, "\\u003c", 6);
            json++;
        }
    }
    return rc < 0 ? rc : put(out, end, sizeof end - 1);
}

int report_html_write(FILE *out, const char *json)
{
    if (out == NULL || json == NULL)
        return -EINVAL;
    int rc = put_all(out, page_before, sizeof page_before / sizeof page_before[0]);
    if (rc == 0)
        rc = put_json(out, json);
    if (rc == 0)
        rc = put_all(out, page_after, sizeof page_after / sizeof page_after[0]);
    if (rc == 0) {
        errno = 0;
        if (fflush(out) == EOF || ferror(out))
            rc = errno ? -errno : -EIO;
    }
    return rc;
}
