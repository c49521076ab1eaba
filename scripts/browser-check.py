#!/usr/bin/env python3
"""Runs the page in the target directory's web/ (scripts/web.sh build) in headless Chromium through ChromeDriver
and reports what it found: the WebGPU adapter, every loss on the page's generated logits, and
every case of the conformance suite, each with its worst error and pass or fail, read from the
page's own result and from the tables it shows. Exits 1 when any fails, when the page finds no
WebGPU adapter, or when it does not finish in time; a screenshot of the page is left in
web/page.png of the target directory either way.

Standard library only: the page is served from 127.0.0.1 by a thread of this script, and
ChromeDriver is driven over its W3C WebDriver HTTP interface.
"""

import argparse
import base64
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def target_directory():
    """The workspace's target directory as cargo uses it (scripts/target-dir.sh)."""
    script = os.path.join(ROOT, "scripts", "target-dir.sh")
    return subprocess.run([script], check=True, capture_output=True, text=True).stdout.strip()


WEB = os.path.join(target_directory(), "web")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(directory):
    """Serves `directory` on 127.0.0.1 from a thread; returns the server and its address."""
    handler = functools.partial(Quiet, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class Driver:
    """A ChromeDriver process and one browser session on it."""

    def __init__(self, chromedriver, chromium, profile, width, height):
        self.port = free_port()
        self.process = subprocess.Popen(
            [chromedriver, f"--port={self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 30
        while True:
            try:
                if self.call("GET", "/status")["value"].get("ready"):
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.time() > deadline or self.process.poll() is not None:
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.2)
        args = [
            "headless=new",
            # WebGPU is off in headless Chromium on Linux without it.
            "enable-unsafe-webgpu",
            f"window-size={width},{height}",
            f"user-data-dir={profile}",
            # The machine's network is closed: no background connections.
            "no-first-run",
            "disable-background-networking",
            "disable-component-update",
            "disable-sync",
            "disable-quic",
        ]
        if os.geteuid() == 0:
            args.append("no-sandbox")
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": chromium, "args": args},
                    "goog:loggingPrefs": {"browser": "ALL"},
                }
            }
        }
        self.session = self.call("POST", "/session", caps)["value"]["sessionId"]

    def call(self, method, path, body=None, timeout=60):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"webdriver {method} {path}: {e.read().decode(errors='replace')}")

    def go(self, url):
        self.call("POST", f"/session/{self.session}/url", {"url": url})

    def script(self, source):
        body = {"script": source, "args": []}
        return self.call("POST", f"/session/{self.session}/execute/sync", body)["value"]

    def console(self):
        """The browser console's messages since the last call."""
        body = {"type": "browser"}
        return [e["message"] for e in self.call("POST", f"/session/{self.session}/se/log", body)["value"]]

    def screenshot(self, path):
        png = self.call("GET", f"/session/{self.session}/screenshot")["value"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(png))

    def close(self):
        try:
            self.call("DELETE", f"/session/{self.session}", timeout=10)
        except Exception:
            pass
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


# What the page shows in its two tables: each row's case and result cells.
TABLES = """
const rows = (id, caseCol, resultCol) => [...document.querySelectorAll(`#${id} tbody tr`)]
  .map((r) => [r.cells[caseCol].textContent, r.cells[resultCol] ? r.cells[resultCol].textContent : ""]);
return { losses: rows("losses", 0, 3), cases: rows("cases", 1, 4),
         adapter: document.getElementById("adapter").textContent,
         summary: document.getElementById("summary").textContent };
"""


def shown_error(report):
    return max(
        (float(v) if not isinstance(v, str) else float("inf"))
        for v in (report["loss_error"], report["grad_error"])
    )


def judge(result, shown):
    """Prints the page's reports and returns the problems found in them and in what it shows."""
    problems = []
    if "error" in result:
        return [f"the page stopped: {result['error']}"]
    adapter = result["adapter"]
    print(f"adapter: {adapter['name'] or '(unnamed)'} ({adapter['backend']}, {adapter['device_type']})")
    for line in shown["adapter"].splitlines()[1:]:
        print(f"  {line}")
    if not adapter["name"]:
        problems.append("the page names no adapter")
    # xent asks for the adapter's own limits, not WebGPU's defaults (128 MiB bindings, ...).
    for limit, offered in (adapter.get("offered") or {}).items():
        if adapter[limit] < offered:
            problems.append(f"xent's device has {limit} {adapter[limit]}, the adapter offers {offered}")
    if not adapter.get("offered"):
        problems.append("the page could not read the adapter's limits")
    for title, key in (("every loss on the page's logits", "losses"), ("conformance suite", "cases")):
        reports = result[key]
        print(f"\n{title}: {len(reports)}")
        for r in reports:
            state = "pass" if r["passed"] else "FAIL"
            print(f"  {state} {shown_error(r):.1e}  {r['case']}")
            if not r["passed"]:
                problems.append(f"{key}: {r['case']}: {r['detail']}")
        if not reports:
            problems.append(f"{key}: the page ran none")
        table = shown[key]
        want = [[r["case"], "pass" if r["passed"] else "FAIL"] for r in reports]
        if table != want:
            problems.append(f"{key}: the page's table does not show its results")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=1800, help="seconds the page may take")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(WEB, "pkg", "xent_web.js")):
        print(f"browser: no page in {WEB}: run scripts/web.sh build first", file=sys.stderr)
        return 1
    start = time.time()
    server, url = serve(WEB)
    profile = tempfile.mkdtemp(prefix="xent-chromium-")
    driver = None
    try:
        driver = Driver(args.chromedriver, args.chromium, profile, 1280, 2400)
        driver.go(url + "?auto")
        result, said = None, None
        while result is None:
            if time.time() - start > args.timeout:
                print(f"browser: the page did not finish within {args.timeout:.0f} s", file=sys.stderr)
                return 1
            time.sleep(2)
            text = driver.script("return window.xentResult ? JSON.stringify(window.xentResult) : null")
            if text is not None:
                result = json.loads(text)
            summary = driver.script("return document.getElementById('summary').textContent")
            if summary and summary != said and int(time.time() - start) % 30 < 2:
                print(f"browser: {summary} ({time.time() - start:.0f} s)", file=sys.stderr)
                said = summary
        shown = driver.script(TABLES)
        problems = judge(result, shown)
        if problems:
            for message in driver.console():
                print(f"console: {message}", file=sys.stderr)
        shot = os.path.join(WEB, "page.png")
        driver.screenshot(shot)
        print(f"\nscreenshot: {os.path.relpath(shot, ROOT)}")
    finally:
        if driver is not None:
            driver.close()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    print(f"browser: {time.time() - start:.0f} s in Chromium")
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
