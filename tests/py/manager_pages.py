"""Works the facility manager's pages in a real headless Chromium (Debian's,
driven by Playwright), signed in with the manager's client certificate:
registers a member of staff (first with a login ID that is taken), issues an
enrollment code and prints the slip, reads the slip's QR code back from the
printed page, enrolls a device on the enroll page it points to (a browser
without any certificate), and reports that device lost through the
confirmation page. Every page is checked with axe-core and photographed.

usage: manager_pages.py BASE_URL P12 PASSPHRASE ARTIFACTS_DIR TAKEN_LOGIN NEW_LOGIN SERIAL DEVICE_P12_OUT
Prints one JSON object with what the pages said.
"""
import base64
import json
import struct
import sys
import zlib

import zxingcpp
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import sync_playwright

AXE = Axe()
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def png_gray(data):
    """The pixels of an 8-bit, non-interlaced RGB(A) or grey PNG (what
    Chromium writes) as a greyscale buffer of shape (height, width)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and interlace == 0 and colour in (0, 2, 4, 6), header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw, stride = zlib.decompress(idat), width * channels
    prev, out, i = bytearray(stride), bytearray(width * height), 0
    for y in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b, c = prev[x], prev[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        for x in range(width):
            px = line[x * channels:x * channels + min(channels, 3)]
            out[y * width + x] = px[0] if channels < 3 else (px[0] * 299 + px[1] * 587 + px[2] * 114) // 1000
        prev = line
    return memoryview(out).cast("B", shape=[height, width])


def qr_text(png):
    found = zxingcpp.read_barcodes(png_gray(png))
    return [b.text for b in found if "QR" in str(b.format)]


class Checked:
    """Runs axe-core on every page it is shown and keeps a screenshot of it."""

    def __init__(self, shots):
        self.shots, self.violations, self.pages = shots, [], []

    def __call__(self, page, name):
        page.wait_for_load_state("load")
        results = AXE.run(page)
        for v in results.response["violations"]:
            if v.get("impact") in ("serious", "critical"):
                self.violations.append({"page": name, "url": page.url, "rule": v["id"], "impact": v["impact"],
                                        "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]})
        page.screenshot(path=f"{self.shots}/manager-{name}.png", full_page=True)
        self.pages.append(name)


def submit(page, selector):
    """Presses the button with the keyboard alone and waits for the next page."""
    page.locator(selector).focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")


def register(page, check, out, taken, login):
    page.get_by_role("link", name="職員を登録する").click()
    check(page, "register")
    page.get_by_label("氏名").fill("千歳 花子")
    page.get_by_label("ログインID").fill(taken)
    page.get_by_label("メールアドレス").fill(f"{login}@example.test")
    page.get_by_label("権限").select_option("staff")
    submit(page, "#submit")
    out["register_error"] = page.locator("#login_id-error").inner_text()
    out["register_error_described"] = page.locator("#login_id").get_attribute("aria-describedby")
    out["register_kept_name"] = page.get_by_label("氏名").input_value()
    check(page, "register-error")
    page.get_by_label("ログインID").fill(login)
    submit(page, "#submit")
    out["registered"] = page.locator("#flash").inner_text()
    check(page, "user")
    return page.url.split("?")[0]


def print_slip(page, check, out, shots):
    submit(page, "#issue-code")
    check(page, "slip")
    out["code"] = page.locator("#code").inner_text()
    out["enroll_url"] = page.locator("#enroll-url").inner_text()
    out["slip_text"] = page.locator("#slip").inner_text()
    page.emulate_media(media="print")
    out["printed_shows_menu"] = page.locator("nav").is_visible() or page.locator("header").is_visible()
    out["printed_shows_buttons"] = page.locator("#print").is_visible()
    out["printed_shows_slip"] = page.locator("#slip").is_visible()
    page.screenshot(path=f"{shots}/manager-slip-print.png", full_page=True)
    # Decoding the slip alone keeps the pure-Python PNG reader quick.
    out["qr"] = qr_text(page.locator("#slip").screenshot())
    page.emulate_media(media="screen")


def enroll(browser, check, out, device_p12):
    context = browser.new_context(ignore_https_errors=True, locale="ja-JP", viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.goto(out["qr"][0])
    check(page, "enroll")
    page.get_by_label("登録コード").fill(out["code"])
    page.get_by_label("端末の名前").fill("相談室タブレット")
    page.get_by_label("アカウントのパスワード").fill("tablet password 2026")
    submit(page, "button[type=submit]")
    check(page, "enrolled")
    href = page.locator("#download").get_attribute("href")
    with open(device_p12, "wb") as f:
        f.write(base64.b64decode(href.split(",", 1)[1]))
    out["device_p12_password"] = page.locator("#p12-password").inner_text().strip()
    context.close()


def report_lost(page, check, out, user_url):
    page.goto(user_url)
    lost = page.locator("a[id^=lost-]")
    out["lost_links"] = lost.count()
    lost.first.focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    check(page, "confirm-lost")
    out["confirm_facts"] = page.locator(".facts").inner_text()
    out["confirm_effect"] = page.locator("#effect").inner_text()
    submit(page, "#confirm")
    check(page, "result-lost")
    out["result"] = page.locator("#result").inner_text()
    out["result_facts"] = page.locator(".facts").inner_text()


def main():
    base, p12, passphrase, shots, taken, login, serial, device_p12 = sys.argv[1:9]
    out = {}
    check = Checked(shots)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=LAUNCH_ARGS)
        context = browser.new_context(
            ignore_https_errors=True, locale="ja-JP", viewport={"width": 1200, "height": 1000},
            client_certificates=[{"origin": base, "pfxPath": p12, "passphrase": passphrase}],
        )
        page = context.new_page()
        page.goto(base + "/console/staff")
        check(page, "staff")
        # The first Tab reaches the skip link, drawn with a visible outline.
        page.keyboard.press("Tab")
        out["first_focus"] = page.evaluate("document.activeElement.textContent")
        out["focus_outline"] = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        user_url = register(page, check, out, taken, login)
        print_slip(page, check, out, shots)
        if out["qr"]:
            enroll(browser, check, out, device_p12)
            report_lost(page, check, out, user_url)
        for name, path in [("queue", "/console/"), ("expiring", "/console/expiring"), ("trail", "/console/trail"),
                           ("search", f"/console/staff?q={login}"), ("retire", user_url[len(base):] + "/retire"),
                           ("hold", f"/console/certificates/{serial}/hold"),
                           ("edit", user_url[len(base):] + "/edit"), ("password", user_url[len(base):] + "/password"),
                           ("review", "/console/review")]:
            page.goto(base + path)
            check(page, name)
        page.goto(base + "/console/trail")
        out["trail"] = page.locator("#trail").inner_text()
        browser.close()
    out["axe_violations"] = check.violations
    out["pages_checked"] = check.pages
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
