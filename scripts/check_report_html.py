#!/usr/bin/env python3
"""Open a `stab report --html` page in headless Chromium and check that it renders.

    scripts/check_report_html.py DIR/report.html

The page is served over HTTP on localhost (so a reference to a missing file is a failed load
Chromium reports), loaded twice by Debian's /usr/bin/chromium: once for a screenshot, once for
the DOM after rendering. It passes when
  * Chromium printed no console message (the page has no scripts, so any message — an error, a
    failed resource load — is a defect);
  * the screenshot is not blank: at least 2% of its pixels differ from the background colour
    and it has at least 16 distinct colours;
  * the rendered DOM holds as many <table> and <svg> elements as the file, and at least one of
    each, and the file references nothing outside itself.
Before checking the page, the script checks itself on two bad pages (a script error with a
missing image, and a blank page) and fails if it would pass either.
Needs only Python's standard library and `apt-get install chromium`.
"""
import functools
import http.server
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import zlib

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0",
]
CONSOLE = re.compile(r":CONSOLE[^\]]*\]\s*(.*)")


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("check_report_html: chromium not found; install it with `apt-get install chromium`")


def serve(directory):
    handler = functools.partial(QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def run_chromium(url, extra, profile):
    cmd = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"chromium exited {out.returncode}: {out.stderr[-2000:]}")
    console = [m.group(1) for m in map(CONSOLE.search, out.stderr.splitlines()) if m]
    return out.stdout, console


def png_pixels(path):
    """(width, height, rows of RGB(A) tuples) of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and interlace == 0 and colour in (2, 6), f"unsupported PNG {header}"
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def screenshot_problems(path):
    width, height, bpp, rows = png_pixels(path)
    counts = {}
    for row in rows:
        for x in range(0, width * bpp, bpp):
            px = row[x:x + 3]
            counts[px] = counts.get(px, 0) + 1
    background, most = max(counts.items(), key=lambda kv: kv[1])
    ink = 1 - most / (width * height)
    problems = []
    if ink < 0.02:
        problems.append(f"screenshot is blank: {100 * ink:.2f}% of pixels differ from the background")
    if len(counts) < 16:
        problems.append(f"screenshot has only {len(counts)} colours")
    return problems, ink, len(counts)


def check(html_path, quiet=False):
    """The list of problems with the page (empty when it renders)."""
    html_path = os.path.abspath(html_path)
    source = open(html_path, encoding="utf-8").read()
    problems = []
    external = re.findall(r"""(?:src|href)\s*=\s*["']([^"'#][^"']*)["']""", source)
    external = [e for e in external if not e.startswith("data:")]
    if external:
        problems.append(f"the page references files outside itself: {external[:5]}")
    server = serve(os.path.dirname(html_path))
    url = f"http://127.0.0.1:{server.server_address[1]}/{os.path.basename(html_path)}"
    with tempfile.TemporaryDirectory() as tmp:
        shot = os.path.join(tmp, "page.png")
        _, console = run_chromium(
            url, ["--window-size=1280,2400", f"--screenshot={shot}"], os.path.join(tmp, "p1"))
        dom, console2 = run_chromium(url, ["--dump-dom"], os.path.join(tmp, "p2"))
        console += console2
        problems += [f"console: {m}" for m in console]
        if not os.path.exists(shot):
            problems.append("chromium wrote no screenshot")
            ink = colours = 0
        else:
            shot_problems, ink, colours = screenshot_problems(shot)
            problems += shot_problems
    server.shutdown()
    rendered = {}
    for tag in ("table", "svg"):
        in_file = len(re.findall(rf"<{tag}[\s>]", source))
        rendered[tag] = len(re.findall(rf"<{tag}[\s>]", dom))
        if rendered[tag] != in_file or rendered[tag] == 0:
            problems.append(f"<{tag}>: {in_file} in the file, {rendered[tag]} rendered")
    if not quiet:
        print(f"check_report_html: {html_path}: {rendered['table']} tables, "
              f"{rendered['svg']} SVG plots rendered; screenshot "
              f"{100 * ink:.1f}% ink, {colours} colours; {len(console)} console messages")
    return problems


def self_test():
    """The check must fail on a page with a script error and a missing image, and on a blank page."""
    with tempfile.TemporaryDirectory() as tmp:
        broken = os.path.join(tmp, "broken.html")
        with open(broken, "w") as f:
            f.write("<html><body><table><tr><td>x</td></tr></table><svg width='10' height='10'></svg>"
                    "<img src='missing.png'><script>undefinedFunction();</script></body></html>")
        blank = os.path.join(tmp, "blank.html")
        with open(blank, "w") as f:
            f.write("<html><body></body></html>")
        broken_problems = check(broken, quiet=True)
        if not any(p.startswith("console:") for p in broken_problems):
            sys.exit(f"check_report_html: self-test failed: a script error went unnoticed ({broken_problems})")
        blank_problems = check(blank, quiet=True)
        if not any("blank" in p for p in blank_problems):
            sys.exit(f"check_report_html: self-test failed: a blank page passed ({blank_problems})")
    print("check_report_html: self-test ok (a script error and a blank page are caught)")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    self_test()
    problems = check(sys.argv[1])
    for p in problems:
        print(f"check_report_html: FAIL: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print("check_report_html: OK")


if __name__ == "__main__":
    main()
