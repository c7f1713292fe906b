//! Onboarding by post (issue 25, items 2 and 3): the code on a slip mailed
//! to a facility outside the city hall outlives the 72 h of a code handed
//! over in person; 福祉課 reissues it from the facility page; the handout on
//! an iPhone offers the configuration profile, which parses as a property
//! list with the device's PKCS#12 and the city's root; each platform has
//! its own import page naming the file it needs.

use connect_pki_e2e::fixtures::{PASSWORD, application};
use connect_pki_e2e::{Backend, FakeTime, Server};
use serde_json::json;

use super::{open_p12, openssl_verify, person, registered, says, serial_of, walk};

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                      Version/17.5 Mobile/15E148 Safari/604.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_mailed_to_a_facility_outlives_the_post_and_fukushika_reissues_it() {
    let mut s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let welfare = person(&s, &admin, 1, "fukushi.yuso", "welfare_division");
    let (status, app) =
        s.public_api("POST", "/api/v1/applications", Some(&application("ゆうびん相談室", "yubin.kanri")));
    assert_eq!(status, 201, "{app}");
    // A code handed over in person, issued at the same moment.
    let (_, by_hand) = registered(&s, &admin, 1, "tewatashi.staff", "staff");

    let out = walk(&s, Some(&welfare), "approve_by_post", json!({"application": app["id"]}));
    says(&out, "approved", "承認しました");
    says(&out, "note", "郵送");
    says(&out, "note", "福祉課または行政管理課");
    says(&out, "facility", "yubin.kanri");
    says(&out, "facility", "担当課");
    let mailed = out["code"].as_str().expect("the code on the slip").trim().to_string();
    let facility_path = out["facility_path"].as_str().expect("the facility page").to_string();

    // Four days on (the slip spent them in the post), on an iPhone.
    s.stop();
    s.spawn_at(FakeTime::ahead(time::Duration::hours(100)), &[]);
    let (p12, profile, inner, root) = (
        s.scratch("yubin.p12"),
        s.scratch("yubin.mobileconfig"),
        s.scratch("yubin-profile.p12"),
        s.scratch("root.der"),
    );
    let o = s.run(
        "openssl",
        &[
            "x509",
            "-in",
            &s.data("ca/root.pem").display().to_string(),
            "-outform",
            "DER",
            "-out",
            &root.display().to_string(),
        ],
    );
    assert!(o.status.success(), "{}", connect_pki_e2e::text(&o));
    let files = json!({"staff_code": by_hand, "code": mailed, "user_agent": IPHONE, "p12": p12, "profile": profile,
                       "profile_p12": inner, "root_der": root});
    let out = walk(&s, None, "enroll_late", files);
    says(&out, "refused", "有効期限切れ");
    says(&out, "enrolled", "証明書を発行しました");
    assert_eq!(out["first_download"], "download-profile", "an iPhone is offered its profile first: {out}");
    assert_eq!(out["steps_shown"], "steps-iphone", "{out}");
    assert_eq!(out["profile_type"], "Configuration", "{out}");
    assert_eq!(out["payload_types"], json!(["com.apple.security.pkcs12", "com.apple.security.root"]), "{out}");
    assert_eq!(out["root_matches"], true, "the profile's root is not the city's: {out}");
    let (p12_file, profile_file) =
        ("使うファイル：証明書ファイル（.p12）", "使うファイル：構成プロファイル（.mobileconfig）");
    for (platform, file) in
        [("windows", p12_file), ("iphone", profile_file), ("mac", profile_file), ("android", p12_file)]
    {
        says(&out, &format!("install_{platform}"), file);
    }
    // The file on its own and the one in the profile: the same certificate,
    // opened by openssl with the password shown once, and it works.
    let password = out["password"].as_str().expect("password");
    let (alone, in_profile) = (open_p12(&s, &p12, password), open_p12(&s, &inner, password));
    assert_eq!(serial_of(&s, &alone), serial_of(&s, &in_profile));
    assert!(openssl_verify(&s, &alone).contains(": OK"), "{}", openssl_verify(&s, &alone));
    let (status, me) = s.api("GET", "/api/v1/whoami", Some(&alone), None);
    assert_eq!(
        (status, me["login_id"].as_str(), me["role"].as_str()),
        (200, Some("yubin.kanri"), Some("facility_manager"))
    );

    // The manager's second slip was lost: 福祉課 reissues from the facility page.
    let out = walk(&s, Some(&welfare), "reissue", json!({"facility_path": facility_path}));
    says(&out, "manager_row", "yubin.kanri");
    says(&out, "result", "登録コードを発行しました");
    let again = out["code"].as_str().expect("the reissued code").trim().to_string();
    assert_ne!(again, mailed);
    let second = s.enroll_generated(&again, Some(PASSWORD), "yubin-ipad");
    assert_eq!(s.api("GET", "/api/v1/whoami", Some(&second), None).1["login_id"], "yubin.kanri");
}
