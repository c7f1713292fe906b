"""Works the city's console pages in a real headless Chromium (Debian's,
driven by Playwright), signed in with a client certificate, by keyboard
where a person would: 福祉課 decides applications, 行政管理課 suspends and
resumes a facility and reads the audit log, staff read their own page.
Every page is checked with axe-core; screenshots go to the given prefix.

usage: city_pages.py CONFIG.json
CONFIG: {"base", "shots", "phase", "cert", "key", and per phase "application",
"reject", "facility"}. Prints one JSON object with what the pages said and
the serious or critical axe violations per page.
"""
from walk import main


def welfare(r, c):
    """福祉課: approve one application, reject another (first without a reason)."""
    app, rejected = c["application"], c["reject"]
    r.goto("/console/applications")
    r.out["applications"] = r.text(f"#application-{app}")
    r.check("applications")
    r.press(f"#approve-{app}")
    r.out["approve_effect"] = r.text("#effect")
    r.check("approve-confirm")
    r.press("#confirm")
    r.out["approved"] = r.text("#result")
    r.out["code"] = r.text("#code")
    r.out["enroll_url"] = r.text("#enroll-url")
    r.check("approved")
    r.page.emulate_media(media="print")
    r.page.screenshot(path=f"{r.shots}-slip-print.png", full_page=True)
    r.out["slip_only_when_printed"] = r.page.locator("nav").is_hidden() and r.page.locator("#slip").is_visible()
    r.page.emulate_media(media="screen")

    r.goto(f"/console/applications/{rejected}/reject")
    r.check("reject", shot=False)
    r.press("#confirm")
    r.out["reject_error"] = r.text("#reason-error")
    r.out["reason_described_by"] = r.page.locator("#f-reason").get_attribute("aria-describedby")
    r.check("reject-error")
    r.page.locator("#f-reason").focus()
    r.page.keyboard.type("市外の施設のため、対象外です。")
    r.press("#confirm")
    r.out["rejected"] = r.text("#result")
    r.check("reject-result", shot=False)

    r.goto("/console/facilities")
    r.out["welfare_offered_steps"] = r.page.locator("a[href$='/suspend']").count()
    r.check("facilities-welfare", shot=False)
    # The facility page, where 福祉課 reissues a manager's code.
    with r.page.expect_navigation():
        r.page.locator("#facilities tbody th a").first.click()
    r.out["facility_page"] = r.text("main")
    r.check("facility-welfare", shot=False)
    r.out["welfare_audit_status"] = r.goto("/console/audit").status
    r.goto("/console/me")
    r.check("me-welfare", shot=False)


def step(r, c, which):
    """行政管理課: one facility step from the list, confirmed, with its result."""
    f = c["facility"]
    r.goto("/console/facilities")
    r.check(f"facilities-before-{which}", shot=False)
    r.press(f"#{which}-{f}")
    r.out["effect"] = r.text("#effect")
    r.check(f"{which}-confirm")
    r.press("#confirm")
    r.out["result"] = r.text("#result")
    r.out["result_facts"] = r.text(".facts")
    r.check(f"{which}-result")
    r.goto("/console/facilities")
    r.out["state"] = r.text(f"#facility-{f} .state")
    r.check("facilities", shot=which == "suspend")


def suspend(r, c):
    step(r, c, "suspend")
    f = c["facility"]
    r.goto("/console/audit")
    r.check("audit", shot=False)
    r.page.select_option("#f-facility", str(f))
    r.page.select_option("#f-action", "facility")
    r.press("#apply-filter")
    r.out["audit_rows"] = r.text("#audit tbody")
    r.check("audit")
    with r.page.expect_download() as d:
        r.page.locator("#csv").click()
    with open(d.value.path(), encoding="utf-8") as fh:
        r.out["csv"] = fh.read()
    r.goto("/console/me")
    r.check("me-admin", shot=False)
    r.goto("/console/certificates/expiring")
    r.out["lifetimes"] = r.text("#ca")
    r.check("lifetimes")
    # nginx asked our responder about the manager: a relying party now, and
    # the suspension's hold is in the manager's certificate's incident record.
    r.goto("/console/relying-parties")
    r.out["relying_parties"] = r.text("#parties")
    r.check("relying-parties")
    r.goto(f"/console/certificates/{c['serial']}/incident")
    r.out["incident"] = r.text("#timeline")
    r.check("incident")
    # The pages of issue 25, each checked with axe-core: the facility page,
    # a night-time call's search, the account review, the record's check.
    r.goto(f"/console/facilities/{f}")
    r.out["facility"] = r.text("main")
    r.check("facility")
    r.goto("/console/phone")
    r.page.fill("#q", c.get("find", "kanri"))
    r.press("#search")
    r.out["phone"] = r.text("main")
    r.check("phone")
    r.goto("/console/review")
    r.out["review"] = r.text("main")
    r.check("review")
    r.goto("/console/verify")
    r.check("verify")


def resume(r, c):
    step(r, c, "resume")


def staff(r, c):
    r.goto("/console/")
    r.out["start"] = r.page.url
    r.out["emergency_url"] = r.text("#emergency-url")
    r.out["devices"] = r.text("main")
    r.check("me")
    r.out["applications_status"] = r.goto("/console/applications").status
    r.out["refusal"] = r.text("main")


def manager(r, c):
    """A facility manager: none of the city's pages, and nothing of them shown."""
    for path in ("/console/facilities", "/console/applications", "/console/audit", "/console/certificates/expiring"):
        r.out[path] = {"status": r.goto(path).status, "text": r.text("main")}
    r.check("refused-manager", shot=False)


def public(r, c):
    """Without a certificate: the application form and its status page, and
    the emergency report in its two steps (sign in, pick the device by label)."""
    r.goto("/apply")
    r.check("public-apply")
    for field, value in [("#name", "あおぞら相談室"), ("#address", "千歳市東雲町1丁目"), ("#department", "福祉課"),
                         ("#manager_name", "青空 花子"), ("#manager_login_id", "aozora.kanri"),
                         ("#manager_email", "aozora@example.test"), ("#manager_phone", "0123-00-1111")]:
        r.page.fill(field, value)
    r.page.check("input[name=purpose_attested]")
    r.page.check("input[name=terms_version]")
    with r.page.expect_navigation():
        r.page.locator("form button[type=submit]").click()
    r.out["applied"] = r.text("main")
    r.check("public-applied")
    with r.page.expect_navigation():
        r.page.locator("#status-link").click()
    r.out["status"] = r.text("main")
    r.check("public-status")
    for platform in ("", "/windows", "/iphone", "/mac", "/android"):
        r.goto("/install" + platform)
        r.check("public-install" + platform.replace("/", "-"), shot=platform == "/iphone")
    r.out["install"] = r.text("main")
    r.goto("/emergency")
    r.check("public-emergency")
    r.page.fill("#login_id", c["login"])
    r.page.fill("#password", c["password"])
    r.press("#sign-in")
    r.out["choose"] = r.text("main")
    r.check("public-emergency-choose")
    r.press("#report")
    r.out["reported"] = r.text("main")
    r.check("public-emergency-done")


def queue(r, c):
    """行政管理課's escalation queue with the report on it."""
    r.goto("/console/")
    r.out["queue"] = r.text("main")
    r.check("queue")


def terms(r, c):
    """A manager who has not accepted the terms in force meets them first."""
    r.goto("/console/staff")
    r.out["terms"] = r.text("main")
    r.check("terms")


if __name__ == "__main__":
    main({"welfare": welfare, "suspend": suspend, "resume": resume, "staff": staff, "manager": manager,
          "public": public, "queue": queue, "terms": terms})
