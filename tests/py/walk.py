"""What every Chromium walk of the pages shares: Debian's Chromium driven by
Playwright in Japanese, signed in with a client certificate when one is
given, axe-core on every page a walk looks at, screenshots, and one JSON
object on stdout with what the pages said and the serious or critical axe
findings per page.

A walk script defines its phases as functions (run, config) and calls
`main(phases)`. CONFIG (the one argument): {"base", "shots", "phase",
optionally "cert" and "key" (PEM files), "user_agent", and what the phase needs}.
"""
import base64
import json
import sys

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import sync_playwright

AXE = Axe()
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Run:
    def __init__(self, page, shots, base):
        self.page, self.shots, self.base, self.out, self.violations = page, shots, base, {}, {}

    def check(self, name, shot=True):
        """axe-core on the page as it is; keeps serious and critical findings."""
        found = AXE.run(self.page).response.get("violations", [])
        bad = [
            {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in found
            if v.get("impact") in ("serious", "critical")
        ]
        self.violations[name] = bad
        if shot:
            self.page.screenshot(path=f"{self.shots}-{name}.png", full_page=True)

    def press(self, selector):
        """Focus a control and press Enter, as a keyboard user does."""
        self.page.locator(selector).focus()
        with self.page.expect_navigation():
            self.page.keyboard.press("Enter")

    def text(self, selector):
        loc = self.page.locator(selector)
        return loc.inner_text() if loc.count() else None

    def goto(self, path):
        return self.page.goto(self.base + path)

    def save_download(self, selector, path):
        """Writes the file a data: link offers (the handout's .p12 and
        .mobileconfig) to `path`, as the browser would save it."""
        href = self.page.locator(selector).get_attribute("href")
        with open(path, "wb") as f:
            f.write(base64.b64decode(href.split(",", 1)[1]))


def main(phases):
    c = json.load(open(sys.argv[1], encoding="utf-8"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=LAUNCH_ARGS)
        certs = [{"origin": c["base"], "certPath": c["cert"], "keyPath": c["key"]}] if c.get("cert") else []
        extra = {"user_agent": c["user_agent"]} if c.get("user_agent") else {}
        context = browser.new_context(
            ignore_https_errors=True,
            accept_downloads=True,
            locale="ja-JP",
            viewport={"width": 1200, "height": 900},
            client_certificates=certs,
            **extra,
        )
        page = context.new_page()
        r = Run(page, c["shots"], c["base"])
        try:
            phases[c["phase"]](r, c)
        except Exception:
            page.screenshot(path=f"{c['shots']}-failed.png", full_page=True)
            sys.stderr.write("failed on " + page.url + ":\n" + page.inner_text("body")[:3000] + "\n")
            raise
        finally:
            browser.close()
    print(json.dumps({"out": r.out, "violations": r.violations}, ensure_ascii=False))
