"""Issue 25's scenarios in Debian's Chromium (see walk.py): the pages as the
people of a year in the city use them, one phase per person and moment; the
Rust side (tests/e2e/scenarios/) steps the server's clock between phases and
checks the outcome with openssl, nginx and the API.

usage: scenarios.py CONFIG.json (walk.py describes CONFIG and the output)
"""
import plistlib
from collections import deque
from urllib.parse import urljoin, urlparse

from walk import main


# Onboarding by post.

def approve_by_post(r, c):
    """福祉課 approves a facility; the slip's code is to go by post."""
    app = c["application"]
    r.goto("/console/applications")
    r.press(f"#approve-{app}")
    r.check("post-approve-confirm", shot=False)
    r.press("#confirm")
    r.out["approved"] = r.text("#result")
    r.out["code"] = r.text("#code")
    r.out["expires"] = r.text("#expires")
    r.out["note"] = r.text("main")
    r.check("post-approved")
    r.press("#facility-page")
    r.out["facility"] = r.text("main")
    r.out["facility_path"] = urlparse(r.page.url).path
    r.check("post-facility")


def enroll_late(r, c):
    """Days later, on an iPhone: a code handed over in person has expired,
    the one that came by post still enrolls; the handout offers the
    configuration profile first; every platform's import page."""
    r.goto("/enroll")
    r.check("post-enroll", shot=False)

    def enroll(code):
        r.page.fill("#code", code)
        r.page.fill("#device_label", "施設長のiPhone")
        r.page.fill("#password", "yubin password 2026")
        r.press("form button[type=submit]")

    enroll(c["staff_code"])
    r.out["refused"] = r.text("#error")
    r.check("post-enroll-expired")
    enroll(c["code"])
    r.out["enrolled"] = r.text("main")
    r.out["first_download"] = r.page.locator(".downloads a").first.get_attribute("id")
    r.out["steps_shown"] = r.page.locator("section.steps").first.get_attribute("id")
    r.out["password"] = r.text("#p12-password").strip()
    r.check("post-enrolled")
    r.save_download("#download", c["p12"])
    r.save_download("#download-profile", c["profile"])
    with open(c["profile"], "rb") as f:
        profile = plistlib.load(f)
    payloads = profile.get("PayloadContent", [])
    r.out["profile_type"] = profile.get("PayloadType")
    r.out["payload_types"] = [p.get("PayloadType") for p in payloads]
    for p in payloads:
        if p.get("PayloadType") == "com.apple.security.pkcs12":
            with open(c["profile_p12"], "wb") as f:
                f.write(p["PayloadContent"])
        if p.get("PayloadType") == "com.apple.security.root":
            with open(c["root_der"], "rb") as f:
                r.out["root_matches"] = p["PayloadContent"] == f.read()
    for platform in ("windows", "iphone", "mac", "android"):
        r.goto(f"/install/{platform}")
        r.out[f"install_{platform}"] = r.text("main")
        r.check(f"post-install-{platform}", shot=platform == "android")


def reissue(r, c):
    """福祉課 reissues the manager's code from the facility page."""
    r.goto(c["facility_path"])
    r.out["manager_row"] = r.text("#managers tbody")
    r.press("#managers button[id^=code-]")
    r.out["result"] = r.text("#result")
    r.out["code"] = r.text("#code")
    r.out["expires"] = r.text("#expires")
    r.check("post-reissued")


# Renewal in month 11.

def my_page(r, c):
    r.goto("/console/me")
    r.out["renewal"] = r.text("#renewal")
    r.out["emergency"] = r.text(".emergency-box")
    r.check(c.get("shot", "me"))


def renew(r, c):
    """A member of staff renews from わたしの端末 with the browser alone."""
    my_page(r, c)
    r.press("#renew")
    r.out["renewed"] = r.text("main")
    r.out["password"] = r.text("#p12-password").strip()
    r.out["handover"] = r.text("#handover")
    r.save_download("#download", c["p12"])
    r.check("renewed")


# A departure at 年度末.

def retire_on_date(r, c):
    """The manager retires a member of staff on the last working day, and
    cannot retire themselves as the facility's only manager."""
    r.goto(f"/console/staff/{c['staff']}/retire")
    r.out["offered"] = r.text("main")
    r.page.fill("#f-on", c["on"])
    r.press("#confirm")
    r.out["retiring"] = r.text("main")
    r.check("departure-scheduled")
    r.goto(f"/console/staff/{c['staff']}")
    r.out["person"] = r.text("main")
    r.goto(f"/console/staff/{c['manager']}/retire")
    r.press("#confirm")
    r.out["self"] = r.text("main")
    r.check("departure-last-manager")


def delete_after(r, c):
    """After the last day: the reminder list, and アカウント削除 from it."""
    r.goto("/console/staff")
    r.out["undeleted"] = r.text("#undeleted")
    r.check("departure-undeleted")
    r.press(f"#delete-{c['staff']}")
    r.out["confirm"] = r.text("main")
    r.press("#confirm")
    r.out["deleted"] = r.text("main")
    r.check("departure-deleted")


def register_again(r, c):
    """Another facility's manager registers the person under the same login ID."""
    r.goto("/console/staff/new")
    r.page.get_by_label("氏名").fill("異動 した人")
    r.page.get_by_label("ログインID").fill(c["login"])
    r.page.get_by_label("メールアドレス").fill("moved@example.test")
    r.page.get_by_label("権限").select_option("staff")
    r.press("#submit")
    r.out["registered"] = r.text("main")
    r.check("departure-registered-again")


# The night-time call.

def emergency_page(r, c):
    r.goto("/emergency")
    r.out["page"] = r.text("main")
    r.check("night-emergency")


def report_lost(r, c):
    """The emergency report's two steps, from any browser."""
    emergency_page(r, c)
    r.page.fill("#login_id", c["login"])
    r.page.fill("#password", c["password"])
    r.press("#sign-in")
    r.press("#report")
    r.out["reported"] = r.text("main")
    r.check("night-reported", shot=False)


def manager_revokes(r, c):
    """The manager, who saw the report, revokes the device from the staff page."""
    r.goto(f"/console/staff/{c['staff']}")
    r.press("a[id^=revoke-]")
    r.out["confirm"] = r.text("main")
    r.check("night-manager-confirm", shot=False)
    r.press("#confirm")
    r.out["result"] = r.text("main")
    r.check("night-manager-revoked")


def phone_call(r, c):
    """行政管理課 takes a call: finds the person, notes the caller, revokes."""
    r.goto("/console/phone")
    r.out["form"] = r.text("main")
    r.page.fill("#q", c["find"])
    r.press("#search")
    r.out["found"] = r.text("main")
    r.check("night-phone-found")
    d = c["device"]
    r.page.fill(f"#caller-{d}", c["caller"])
    r.page.fill(f"#callback-{d}", c["callback"])
    r.page.fill(f"#note-{d}", "本人から電話。駅で紛失、見つかっていない。")
    r.press(f"#revoke-{d}")
    r.out["result"] = r.text("main")
    r.check("night-phone-revoked")


def queue(r, c):
    r.goto("/console/")
    r.out["queue"] = r.text("main")
    r.check("night-queue", shot=False)


# A log review: every page a person reaches, as each person.

SKIP = (".csv", ".json", ".css", ".js", ".p12", ".mobileconfig", ".png", ".crt", ".crl", ".pem")


def crawl(r, c):
    """Follows every same-site link from the start pages (GET only, files
    skipped): each page's visible text, and axe-core on each."""
    site = urlparse(r.base).netloc
    seen, todo, pages = set(c["start"]), deque(c["start"]), {}
    while todo:
        path = todo.popleft()
        answer = r.goto(path)
        # A link a person is shown must lead somewhere they may go.
        if answer is None or answer.status >= 400:
            raise AssertionError(f"GET {path}: {answer and answer.status}")
        pages[path] = r.page.inner_text("body")
        r.check(f"{c['who']}{path}", shot=False)
        for href in r.page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
            url = urlparse(urljoin(r.page.url, href))
            if url.netloc != site or url.path.endswith(SKIP) or url.path.startswith("/api/"):
                continue
            nxt = url.path + (f"?{url.query}" if url.query else "")
            if nxt not in seen and len(seen) < c.get("limit", 300):
                seen.add(nxt)
                todo.append(nxt)
    r.out["pages"] = pages
    if c.get("csv"):
        r.goto("/console/audit")
        with r.page.expect_download() as d:
            r.page.locator("#csv").click()
        with open(d.value.path(), "rb") as fh:
            r.out["csv"] = fh.read().decode("utf-8")


if __name__ == "__main__":
    main({"approve_by_post": approve_by_post, "enroll_late": enroll_late, "reissue": reissue, "my_page": my_page,
          "renew": renew, "retire_on_date": retire_on_date, "delete_after": delete_after,
          "register_again": register_again, "emergency_page": emergency_page, "report_lost": report_lost,
          "manager_revokes": manager_revokes, "phone_call": phone_call, "queue": queue, "crawl": crawl})
