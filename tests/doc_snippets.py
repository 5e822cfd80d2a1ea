#!/usr/bin/env python3
"""The C code in the docs compiles, links and (complete programs) runs.

Every ```c block of the Markdown files given is one of two kinds:

- A complete program (it defines main): compiled as it stands, linked with the
  library, and run (under a timeout); it must exit with status 0.
- A fragment, marked by an HTML comment right before the block (blank lines between
  are allowed), invisible in the rendered page:

      <!-- snippet: wrap
      static void *fetch(void *url) { return url; }
      static int fetch_all(char **urls, int n) {
      ...
          return r;
      }
      int main(void) { ... }
      -->

  The comment holds the code around the block: the line "..." alone stands for the
  block.  <plait.h> and the common C headers (PRELUDE below) come first.  The whole is
  compiled and linked; "wrap run" instead of "wrap" runs it too, as a program.

A ```c block that is neither (no main, no marker) fails the test: say which kind it is.

Usage: doc_snippets.py --cc CC --include DIR --lib LIBPLAIT [--flag F]... [--link-flag F]...
                       [--emulator CMD] [--root DIR] [--keep DIR] FILE.md...
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

PRELUDE = """#include <plait.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
"""

RUN_TIMEOUT_S = 20
MARKER = re.compile(r"<!--\s*snippet:\s*(wrap(?:\s+run)?)\b(.*?)-->", re.S)


def blocks(path):
    """(line of the opening fence, code, marker kind or None, template or None,
    the line where the template begins)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```c":
            start = i
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            if j == len(lines):
                raise SystemExit(f"{path}:{start + 1}: unterminated ```c block")
            code = "\n".join(lines[start + 1:j]) + "\n"
            # The marker: a comment that ends on the last non-blank line before the fence.
            k = start - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            kind = template = None
            tline = 0
            if k >= 0 and lines[k].rstrip().endswith("-->"):
                text = "\n".join(lines[:k + 1])
                begin = text.rfind("<!--")
                m = MARKER.fullmatch(text[begin:].rstrip()) if begin >= 0 else None
                if m:
                    kind, template = " ".join(m.group(1).split()), m.group(2)
                    tline = text[:begin].count("\n") + 1   # where template line 0 is
            out.append((start + 1, code, kind, template, tline))
            i = j + 1
        else:
            i += 1
    return out


def source_of(where, code, kind, template, tline):
    """The translation unit to compile, whether to run it, or an error message."""
    if kind is None:
        if not re.search(r"\bint\s+main\s*\(", code):
            return None, False, (f"{where}: a fragment (no main) without a "
                                 "'<!-- snippet: wrap ... -->' comment before it")
        path, line = where.rsplit(":", 1)
        return f'#line {int(line) + 1} "{path}"\n' + code, True, None
    tlines = template.split("\n")
    holes = [n for n, t in enumerate(tlines) if t.strip() == "..."]
    if len(holes) != 1:
        return None, False, f"{where}: its wrap comment needs exactly one line '...'"
    h = holes[0]
    path, line = where.rsplit(":", 1)
    src = (PRELUDE + f'#line {tline} "{path}"\n' + "\n".join(tlines[:h]) + "\n"
           + f'#line {int(line) + 1} "{path}"\n' + code
           + f'#line {tline + h + 1} "{path}"\n' + "\n".join(tlines[h + 1:]) + "\n")
    return src, kind == "wrap run", None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cc", required=True)
    ap.add_argument("--include", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--flag", action="append", default=[])
    ap.add_argument("--link-flag", action="append", default=[])
    ap.add_argument("--emulator", default="")
    ap.add_argument("--root", help="name the docs relative to this folder")
    ap.add_argument("--keep", help="write the sources and programs here")
    ap.add_argument("docs", nargs="+")
    a = ap.parse_args()

    t0 = time.monotonic()
    failed = []
    total = ran = 0
    tmp = None
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
        work = a.keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix="plait_doc_snippets.")
        work = tmp.name
    for doc in a.docs:
        rel = os.path.relpath(os.path.abspath(doc), a.root) if a.root else doc
        found = blocks(doc)
        for line, code, kind, template, tline in found:
            total += 1
            where = f"{rel}:{line}"
            src, run, err = source_of(where, code, kind, template, tline)
            if err:
                failed.append(err)
                print("FAIL", err)
                continue
            stem = os.path.join(work, re.sub(r"[^A-Za-z0-9]+", "_", where))
            with open(stem + ".c", "w", encoding="utf-8") as f:
                f.write(src)
            cmd = ([a.cc] + a.flag + ["-I", a.include, stem + ".c", "-o", stem, a.lib]
                   + a.link_flag)
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=120)
            if p.returncode != 0:
                failed.append(f"{where}: does not compile")
                print(f"FAIL {where}: does not compile ({kind or 'program'}):\n"
                      + p.stdout.rstrip())
                continue
            if not run:
                print(f"ok   {where}: compiles and links ({kind})")
                continue
            ran += 1
            argv = shlex.split(a.emulator) + [stem]
            try:
                r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True,
                                   timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                failed.append(f"{where}: still running after {RUN_TIMEOUT_S} s")
                print(f"FAIL {where}: still running after {RUN_TIMEOUT_S} s")
                continue
            if r.returncode != 0:
                failed.append(f"{where}: exit status {r.returncode}")
                print(f"FAIL {where}: ran, exit status {r.returncode}; output:\n"
                      + r.stdout.rstrip())
                continue
            print(f"ok   {where}: compiles, links, runs (exit 0)")
    if tmp:
        tmp.cleanup()
    print(f"doc snippets: {total} blocks, {ran} run, {len(failed)} failed "
          f"({time.monotonic() - t0:.1f} s)")
    if total == 0:
        print("no ```c block found: the extraction is broken")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
