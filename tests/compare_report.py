#!/usr/bin/env python3
"""The report of `plait compare`: its JSON against docs/compare.schema.json, and its
HTML drawn by headless Chromium against that JSON.

    python3 tests/compare_report.py PLAIT_BINARY SCHEMA_PATH [HARNESS]

Runs `PLAIT_BINARY compare --quick --json --html TMP/report.html` (exit status 0; the
JSON on stdout), validates the JSON with the schema and checks that the schema rejects
broken copies of it.  Then loads the HTML in headless Chromium, takes the DOM its script
built (--dump-dom) and checks it against the JSON: a bar (<rect data-metric
data-series data-value>) of positive width for every figure measured, wider for a
greater figure, "not measured" for every null, a table row per metric and fact, every
recommendation's reason, the embedded data equal to the JSON.  With HARNESS
(tests/report_html_harness.c: JSON on stdin, the report on stdout) it also renders JSON
whose reason holds `</script><b>x</b>` and checks the page shows that as text.

Needs python3-jsonschema and chromium; without them it fails, it does not skip.
Every failure prints what differed and exits 1; success prints one summary line.
"""
import copy
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from html.parser import HTMLParser

PLAIT_TIMEOUT = 150     # seconds for `plait compare --quick`
CHROMIUM_TIMEOUT = 120  # seconds for one page in Chromium
HARNESS_TIMEOUT = 30
MODELS = ('coroutine', 'thread', 'process')
INJECTED = 'a </script><b>x</b> & "q"'


def fail(msg):
    print('compare_report: FAIL: ' + msg, flush=True)
    sys.exit(1)


def run(cmd, timeout, stdin_bytes=None):
    """Runs cmd in its own session; on timeout kills that whole session (Chromium's
    and plait's children too).  Returns (status, stdout bytes, stderr text)."""
    try:
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin_bytes is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        fail('cannot run %s: %s' % (cmd[0], e))
    try:
        out, err = p.communicate(stdin_bytes, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        fail('%s did not finish within %d s: %s' % (os.path.basename(cmd[0]), timeout, ' '.join(cmd)))
    try:  # what the command left behind in its session (a browser helper)
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return p.returncode, out, err.decode('utf-8', 'replace')


def tail(text, lines=15):
    return '\n'.join(text.strip().splitlines()[-lines:])


# ---- the DOM as a small tree (html.parser gives events only)

VOID = {'area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta',
        'source', 'track', 'wbr'}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.kids = tag, dict(attrs), parent, []

    def walk(self):
        for k in self.kids:
            if isinstance(k, Node):
                yield k
                yield from k.walk()

    def text(self, skip=('script', 'style', 'noscript', 'head')):
        parts = []

        def collect(n):
            for k in n.kids:
                if isinstance(k, str):
                    parts.append(k)
                elif k.tag not in skip:
                    collect(k)
        collect(self)
        return ''.join(parts)

    def find(self, tag=None, **attrs):
        return [n for n in self.walk() if (tag is None or n.tag == tag)
                and all(n.attrs.get(k.replace('_', '-')) == v for k, v in attrs.items())]


class TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node('#document', [], None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.kids.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.kids.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.kids.append(data)


def parse(html):
    b = TreeBuilder()
    b.feed(html)
    b.close()
    return b.root


def render(browser, html_path, tmp, n):
    """The DOM of the page after its script ran, as Chromium serializes it."""
    cmd = [browser, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
           '--no-first-run', '--user-data-dir=' + os.path.join(tmp, 'chromium-profile-%d' % n),
           '--window-size=1200,2000', '--virtual-time-budget=10000', '--dump-dom',
           'file://' + os.path.abspath(html_path)]
    status, out, err = run(cmd, CHROMIUM_TIMEOUT)
    dom = out.decode('utf-8', 'replace')
    if status != 0 or '<html' not in dom:
        fail('Chromium did not render %s (exit status %d); its stderr:\n%s' % (html_path, status, tail(err)))
    return parse(dom)


def embedded_data(doc, what):
    scripts = doc.find('script', id='plait-data')
    if len(scripts) != 1 or scripts[0].attrs.get('type') != 'application/json':
        fail('%s: %d <script type="application/json" id="plait-data"> elements, expected 1'
             % (what, len(scripts)))
    text = ''.join(k for k in scripts[0].kids if isinstance(k, str))
    try:
        return json.loads(text)
    except ValueError as e:
        fail('%s: the embedded data is not JSON (%s): %r' % (what, e, text[:200]))


def check_rendered(doc, what):
    errors = [n for n in doc.find('p') if 'error' in n.attrs.get('class', '').split()
              and not any(a.tag == 'noscript' for a in ancestors(n))]
    if errors:
        fail('%s: the page shows an error: %s' % (what, errors[0].text()))
    if len(doc.find('table', id='plait-table')) != 1:
        fail('%s: no table id="plait-table": the script did not render the report' % what)
    for n in doc.walk():
        if n.tag in ('img', 'iframe', 'link', 'object', 'embed') or 'src' in n.attrs:
            fail('%s: the page loads something from outside: <%s %s>' % (what, n.tag, n.attrs))


def ancestors(n):
    while n.parent is not None:
        n = n.parent
        yield n


def check_report(doc, data):
    """The rendered page against the JSON; returns counts for the summary."""
    what = 'report.html'
    check_rendered(doc, what)
    if embedded_data(doc, what) != data:
        fail('report.html: the embedded data differs from the JSON printed on stdout')
    text = doc.text()
    machine = data['machine']
    for label, value in (('plait version', data['plait_version']), ('kernel', machine['kernel']),
                         ('CPU model', machine['cpu_model']), ('I/O backend', machine['io_backend'])):
        if value and value not in text:
            fail('report.html: the header does not show the %s %r' % (label, value))

    # Bars: exactly one per figure measured, with the figure and a positive width.
    rects = {}
    for r in doc.find('rect'):
        if 'data-metric' in r.attrs:
            rects.setdefault((r.attrs['data-metric'], r.attrs.get('data-series')), []).append(r)
    expected, nulls, bars = set(), 0, 0
    for m in data['metrics']:
        series = [(md, m['values'][md]) for md in MODELS]
        series += [('extra:%d' % i, x['value']) for i, x in enumerate(m['extra'])]
        drawn = []
        for sid, v in series:
            key = (m['id'], sid)
            found = rects.get(key, [])
            if v is None:
                if found:
                    fail('metric %s: %s is null but has a bar' % key)
                marks = [n for n in doc.find(data_metric=m['id'], data_series=sid) if n.tag != 'rect']
                if not any('not measured' in n.text() for n in marks):
                    fail('metric %s: %s is null but its chart does not say "not measured"' % key)
                nulls += 1
                continue
            expected.add(key)
            if len(found) != 1:
                fail('metric %s, series %s: %d bars (<rect data-metric data-series>), expected 1'
                     % (key[0], key[1], len(found)))
            attrs = found[0].attrs
            try:
                shown, width = float(attrs.get('data-value')), float(attrs.get('width'))
            except (TypeError, ValueError):
                fail('metric %s, series %s: bar attributes data-value=%r width=%r are not numbers'
                     % (key[0], key[1], attrs.get('data-value'), attrs.get('width')))
            if not math.isclose(shown, v, rel_tol=1e-9):
                fail('metric %s, series %s: the bar says data-value=%r, the JSON %r'
                     % (key[0], key[1], attrs.get('data-value'), v))
            if not width > 0:
                fail('metric %s, series %s: the bar of %r has width %r' % (key[0], key[1], v, width))
            drawn.append((v, width, sid))
            bars += 1
        # Greater figure, wider bar (log and linear axes alike).
        for va, wa, sa in drawn:
            for vb, wb, sb in drawn:
                if vb > va * (1 + 1e-6) and not wb > wa:
                    fail('metric %s (%s scale): %s = %r has a bar of width %r, not wider than %s = %r (width %r)'
                         % (m['id'], m['scale'], sb, vb, wb, sa, va, wa))
                if vb >= va and not wb >= wa:
                    fail('metric %s (%s scale): %s = %r has a narrower bar (%r) than %s = %r (%r)'
                         % (m['id'], m['scale'], sb, vb, wb, sa, va, wa))
        if len(doc.find('figure', data_metric=m['id'])) != 1:
            fail('metric %s: expected one chart (<figure data-metric>)' % m['id'])
    stray = set(rects) - expected
    if stray:
        fail('bars for figures the JSON does not have: %s' % sorted(stray))

    # The table: a row per metric, then a row per fact, a cell per model.
    table = doc.find('table', id='plait-table')[0]
    rows = [tr for body in table.find('tbody') for tr in body.find('tr')]
    want = [m['id'] for m in data['metrics']] + [f['id'] for f in data['facts']]
    got = [tr.attrs.get('data-id') for tr in rows]
    if got != want:
        fail('table rows %s, expected a row per metric then per fact: %s' % (got, want))
    for tr, row in zip(rows, data['metrics'] + data['facts']):
        cells = tr.find('td')
        if len(cells) != len(MODELS):
            fail('table row %s: %d cells, expected %d' % (row['id'], len(cells), len(MODELS)))
        for td, md in zip(cells, MODELS):
            v = row['values'][md]
            cell = td.text().strip()
            if v is None and cell != 'not measured':
                fail('table row %s, %s: null shows %r, not "not measured"' % (row['id'], md, cell))
            if isinstance(v, str) and cell != v:
                fail('table row %s, %s: shows %r, the JSON says %r' % (row['id'], md, cell, v))
            if isinstance(v, (int, float)) and not cell:
                fail('table row %s, %s: the value %r is not shown' % (row['id'], md, v))

    for r in data['recommendations']:
        if r['why'] not in text:
            fail('the recommendation for %r: its reason %r is not in the page' % (r['work'], r['why']))
    return {'metrics': len(data['metrics']), 'facts': len(data['facts']), 'bars': bars,
            'nulls': nulls, 'recommendations': len(data['recommendations'])}


def check_schema(jsonschema, schema, data):
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        fail('the schema itself is invalid: %s' % e.message)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        fail('the JSON does not match the schema:\n' + '\n'.join(
            '  at /%s: %s' % ('/'.join(map(str, e.absolute_path)), e.message) for e in errors[:10]))

    def broken(change):
        d = copy.deepcopy(data)
        change(d)
        return d
    m0 = 0
    cases = {
        'a values object without the key "thread"': broken(lambda d: d['metrics'][m0]['values'].pop('thread')),
        'a negative value': broken(lambda d: d['metrics'][m0]['values'].__setitem__('coroutine', -1.5)),
        'a value of 0': broken(lambda d: d['metrics'][m0]['values'].__setitem__('process', 0)),
        'better = "sideways"': broken(lambda d: d['metrics'][m0].__setitem__('better', 'sideways')),
        'the models in another order': broken(lambda d: d['models'].reverse()),
        'an unknown top-level key': broken(lambda d: d.__setitem__('surprise', 1)),
    }
    for name, d in cases.items():
        if validator.is_valid(d):
            fail('the schema accepts a broken copy of the JSON: %s' % name)
    return len(cases)


def check_injection(harness, browser, data, tmp):
    """A reason holding </script> and markup is shown as text by the harness's page."""
    doctored = copy.deepcopy(data)
    if doctored['recommendations']:
        doctored['recommendations'][0]['why'] = INJECTED
    else:
        doctored['recommendations'].append({'work': 'a test', 'model': None, 'why': INJECTED})
    status, out, err = run([harness], HARNESS_TIMEOUT,
                           json.dumps(doctored, ensure_ascii=False).encode('utf-8'))
    if status != 0:
        fail('%s exited with %d: %s' % (harness, status, tail(err)))
    html = out.decode('utf-8')
    if html.count('</script>') != 2:
        fail('the harness page has %d "</script>", expected 2 (the data and the renderer): '
             'a "<" in the JSON was not escaped' % html.count('</script>'))
    path = os.path.join(tmp, 'injected.html')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(html)
    doc = render(browser, path, tmp, 2)
    what = 'the page of a reason with </script>'
    check_rendered(doc, what)
    if embedded_data(doc, what) != doctored:
        fail('%s: the embedded data is not the JSON given' % what)
    bold = [n for n in doc.walk() if n.tag == 'b']
    if bold:
        fail('%s: the reason became markup (%d <b> elements)' % (what, len(bold)))
    if INJECTED not in doc.text():
        fail('%s: the text %r is not in the page' % (what, INJECTED))


def main():
    if len(sys.argv) not in (3, 4):
        print('usage: compare_report.py PLAIT_BINARY SCHEMA_PATH [HARNESS]', file=sys.stderr)
        return 2
    plait, schema_path = sys.argv[1], sys.argv[2]
    harness = sys.argv[3] if len(sys.argv) == 4 else None
    try:
        import jsonschema
    except ImportError:
        fail('python3-jsonschema is missing (apt-get install python3-jsonschema); '
             'this test does not skip, or a broken report would pass unseen')
    browser = shutil.which('chromium') or shutil.which('chromium-browser')
    if browser is None:
        fail('chromium is missing (apt-get install chromium); this test does not skip, '
             'or a broken report would pass unseen')
    with open(schema_path, encoding='utf-8') as f:
        schema = json.load(f)

    with tempfile.TemporaryDirectory(prefix='plait-report-') as tmp:
        html_path = os.path.join(tmp, 'report.html')
        cmd = [plait, 'compare', '--quick', '--json', '--html', html_path]
        status, out, err = run(cmd, PLAIT_TIMEOUT)
        if status != 0:
            fail('%s exited with %d; its stderr:\n%s' % (' '.join(cmd), status, tail(err)))
        try:
            data = json.loads(out.decode('utf-8'))
        except ValueError as e:
            fail('plait compare --json printed no valid JSON (%s): %r' % (e, out[:300]))
        if not os.path.isfile(html_path):
            fail('plait compare --html %s wrote no file' % html_path)

        rejected = check_schema(jsonschema, schema, data)
        for key in ('metrics', 'facts'):
            ids = [x['id'] for x in data[key]]
            if len(set(ids)) != len(ids):
                fail('%s ids are not unique: %s' % (key, ids))
        counts = check_report(render(browser, html_path, tmp, 1), data)
        if harness:
            check_injection(harness, browser, data, tmp)

    print('compare_report: ok: JSON valid against %s (%d broken copies rejected); in Chromium, '
          '%d metrics with %d bars and %d "not measured", %d facts, %d recommendations match the JSON%s'
          % (os.path.basename(schema_path), rejected, counts['metrics'], counts['bars'], counts['nulls'],
             counts['facts'], counts['recommendations'],
             '; a reason with </script> shows as text' if harness else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
