"""Works the escalation console in a real headless Chromium (Debian's, driven
by Playwright), signing in with a client certificate from a PKCS#12 file:
claims escalation ID with the keyboard alone, then revokes it with a note.

usage: console.py BASE_URL P12 PASSPHRASE ESCALATION_ID SCREENSHOT_PREFIX
Prints one JSON object with what the page said.
"""
import json
import sys

from playwright.sync_api import sync_playwright


def main():
    base, p12, passphrase, eid, shots = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        context = browser.new_context(
            ignore_https_errors=True,
            locale="ja-JP",
            viewport={"width": 1200, "height": 1000},
            client_certificates=[{"origin": base, "pfxPath": p12, "passphrase": passphrase}],
        )
        page = context.new_page()
        page.goto(base + "/console/")
        out["title"] = page.title()
        out["queue_has_escalation"] = page.locator(f"#escalation-{eid}").count() == 1
        out["open_count"] = page.locator("#open-count").inner_text()
        page.screenshot(path=shots + "-queue.png", full_page=True)

        # Keyboard only: focus the claim button and press Enter.
        page.locator(f"#claim-{eid}").focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        if page.locator("#flash").count() == 0:
            page.screenshot(path=shots + "-failed.png", full_page=True)
            raise SystemExit("no confirmation after claiming; the page says: " + page.inner_text("body")[:2000])
        out["after_claim"] = page.locator("#flash").inner_text()

        page.locator(f"#note-{eid}").focus()
        page.keyboard.type("本人に電話で確認。端末は見つからず。")
        page.locator(f"#revoke-{eid}").focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        out["after_revoke"] = page.locator("#flash").inner_text()
        out["history"] = page.locator("#history").inner_text()
        page.screenshot(path=shots + "-resolved.png", full_page=True)
        browser.close()
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
