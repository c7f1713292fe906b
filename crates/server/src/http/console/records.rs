//! The audit log in the words of the people who read it: 行政管理課's
//! 監査ログ and its CSV, a manager's 操作の記録 and the incident record all
//! say who did what to whom in Japanese — names, not `user:5`; actions,
//! states, roles and reasons as the pages name them; times in Japan time;
//! details as short phrases, never JSON. The records themselves keep the
//! code's words (the API and the hash chain read them); only the reading
//! is translated, here, in one place.

use std::collections::HashMap;

use connect_pki_domain::{AuditAction, CertStatus, Reason, Role};
use connect_pki_store::{AuditRecord, UserRecord};
use serde_json::Value;

use super::kit::{cert_ja, local, role_ja};

/// The people and facilities a page can name.
#[derive(Default)]
pub(crate) struct Names {
    users: HashMap<i64, String>,
    facilities: HashMap<i64, String>,
}

impl Names {
    pub(crate) fn new<'a>(
        users: impl IntoIterator<Item = &'a UserRecord>,
        facilities: impl IntoIterator<Item = (i64, String)>,
    ) -> Names {
        Names::named(users.into_iter().map(|u| (u.id.0, person(u))), facilities)
    }

    /// Names as the caller may see them (a manager sees the city's staff by role).
    pub(crate) fn named(
        users: impl IntoIterator<Item = (i64, String)>,
        facilities: impl IntoIterator<Item = (i64, String)>,
    ) -> Names {
        Names { users: users.into_iter().collect(), facilities: facilities.into_iter().collect() }
    }

    pub(crate) fn user_name(&self, id: i64) -> String {
        self.user(&id.to_string())
    }

    fn user(&self, id: &str) -> String {
        match id.parse::<i64>().ok().and_then(|n| self.users.get(&n)) {
            Some(name) => name.clone(),
            None => format!("職員（番号 {id}）"),
        }
    }

    fn facility(&self, id: &str) -> String {
        match id.parse::<i64>().ok().and_then(|n| self.facilities.get(&n)) {
            Some(name) => name.clone(),
            None => format!("施設（番号 {id}）"),
        }
    }

    /// The user ids `records` mention, to look their names up.
    pub(crate) fn wanted(records: &[AuditRecord]) -> Vec<connect_pki_domain::UserId> {
        let mut ids: Vec<i64> = records
            .iter()
            .flat_map(|r| {
                let e = &r.entry;
                let key = |k: &str| k.strip_prefix("user:").and_then(|n| n.parse::<i64>().ok());
                [e.user.map(|u| u.0), key(&e.actor), key(&e.target)]
            })
            .flatten()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().map(connect_pki_domain::UserId).collect()
    }
}

/// A person as every page names them: 氏名（ログインID）.
pub(crate) fn person(u: &UserRecord) -> String {
    match (&u.display_name, &u.login_id) {
        (Some(name), Some(login)) => format!("{name}（{login}）"),
        (Some(name), None) => name.clone(),
        _ => format!("職員 {}（個人情報削除済み）", u.id),
    }
}

/// One record as a person reads it.
pub(crate) struct Line {
    pub(crate) id: i64,
    pub(crate) at: String,
    pub(crate) actor: String,
    pub(crate) action: &'static str,
    pub(crate) target: String,
    pub(crate) outcome: String,
    pub(crate) facility: String,
    pub(crate) user: String,
    pub(crate) detail: String,
}

pub(crate) fn line(r: &AuditRecord, names: &Names) -> Line {
    let e = &r.entry;
    Line {
        id: r.id,
        at: local(r.at),
        actor: actor_ja(&e.actor, names),
        action: action_ja(e.action),
        target: target_ja(&e.target, names),
        outcome: outcome_ja(&e.outcome),
        facility: e.facility.map(|f| names.facility(&f.0.to_string())).unwrap_or_default(),
        user: e.user.map(|u| names.user(&u.0.to_string())).unwrap_or_default(),
        detail: detail_ja(&e.detail, names),
    }
}

/// Every action in words; a new action does not compile until it has its own.
pub(crate) fn action_ja(action: AuditAction) -> &'static str {
    use AuditAction::*;
    match action {
        ApplicationSubmit => "施設の利用申請",
        ApplicationApprove => "施設の申請の承認",
        ApplicationReject => "施設の申請の却下",
        ApplicationPurge => "却下した申請の削除",
        FacilityCreate => "施設の登録",
        FacilitySuspend => "施設の利用停止",
        FacilityResume => "施設の利用再開",
        FacilityClose => "施設の廃止",
        FacilityLifetimes => "証明書の有効期間の設定",
        UserCreate => "職員の登録",
        UserRetire => "退職",
        UserRetireScheduled => "退職の予定",
        UserRetireCancelled => "退職の予定の取り消し",
        UserDelete => "アカウント削除",
        UserUpdate => "職員の情報の変更",
        UserTransfer => "異動",
        UserPasswordReset => "緊急届出のパスワードの再設定",
        EnrollmentCodeCreate => "登録コードの発行",
        EnrollmentRedeem => "登録コードの使用",
        DeviceCreate => "端末の登録",
        DeviceLost => "端末の紛失",
        DeviceRetire => "端末の廃棄・初期化（端末管理システムから）",
        CertificateIssue => "証明書の発行",
        CertificateRenew => "証明書の更新",
        CertificateRevoke => "証明書の無効化（失効）",
        CertificateHold => "証明書の一時停止",
        CertificateRelease => "一時停止の解除",
        CertificateExpiryNotice => "証明書の期限のお知らせ（メール）",
        EscalationOpen => "緊急届出の受付",
        EscalationClaim => "緊急届出の担当",
        EscalationEscalate => "緊急届出の行政管理課への移管",
        EscalationResolve => "緊急届出の対応完了",
        EmergencySignIn => "緊急届出のサインイン",
        TermsAccept => "利用規約への同意",
        AccountReview => "アカウントの棚卸し（確認）",
        AccountReviewReminder => "アカウントの棚卸しのお知らせ（メール）",
        RequestRefused => "拒否された操作",
        CrlReapply => "失効の再適用（復元後）",
        RevocationsWriteBack => "失われた失効の書き戻し",
        CaRollover => "発行 CA の世代交代",
        CaOcspSignerRenew => "OCSP 署名証明書の更新",
        CaTlsServerRenew => "TLS サーバー証明書の更新",
    }
}

/// Who acted: a person by name, the public pages with the address they
/// came from, or which automatic job.
pub(crate) fn actor_ja(actor: &str, names: &Names) -> String {
    match actor.split_once(':') {
        Some(("user", id)) => names.user(id),
        Some(("public", addr)) => format!("登録・届出のページ（{addr} から）"),
        Some(("certificate", serial)) => format!("証明書 {serial} の持ち主"),
        Some(("cli", who)) => format!("サーバーでのコマンド操作（{who}）"),
        Some(("system", job)) => format!("システム（{}）", system_ja(job)),
        _ => actor.to_string(),
    }
}

fn system_ja(job: &str) -> &'static str {
    match job {
        "sla" => "対応期限の経過",
        "hold-limit" => "一時停止の期限",
        "scheduled-retirement" => "予定した退職日",
        "handover" => "更新した証明書への切り替え",
        "expiry" => "期限のお知らせ",
        "retention" => "保存期間の経過",
        "suspension" => "施設の利用停止",
        "restore" | "rollback" | "journal" | "reconcile" => "復元後の整合",
        "renewal" => "サービス証明書の更新",
        "init" => "初期設定",
        _ => "自動",
    }
}

/// What a record is about: a person or facility by name, else its kind and number.
pub(crate) fn target_ja(target: &str, names: &Names) -> String {
    if let Some(route) = target.strip_suffix(" (no such code)") {
        return format!("{route}（存在しない登録コード）");
    }
    let Some((kind, id)) = target.split_once(':') else { return target.to_string() };
    match kind {
        "user" => names.user(id),
        "facility" => names.facility(id),
        "device" => format!("端末 {id}"),
        "certificate" => format!("証明書 {id}"),
        "enrollment_code" => format!("登録コード {id}"),
        "application" => format!("申請 {id}"),
        "escalation" => format!("緊急届出 {id}"),
        _ => target.to_string(),
    }
}

/// How it ended, as a refusal names itself in the record.
pub(crate) fn outcome_ja(outcome: &str) -> String {
    if let Some(left) = outcome.strip_prefix("wrong code (").and_then(|r| r.strip_suffix(" tries left)")) {
        return format!("登録コードの誤り（あと {left} 回でロック）");
    }
    match outcome {
        "ok" => "成功",
        "forbidden" => "権限がないため拒否",
        "refused" => "拒否",
        "unknown" => "不明",
        "wrong code for an unusable code" => "登録コードの誤り（使えないコード）",
        o if o.starts_with("this enrollment code is not valid") => "登録コードの誤り",
        o if o.starts_with("this enrollment code has already been used") => "使用済みの登録コード",
        o if o.starts_with("this enrollment code has expired") => "期限切れの登録コード",
        o if o.starts_with("this enrollment code is locked") => "ロックされた登録コード",
        o if o.starts_with("the account this code belongs to") => "アカウントが使えない状態",
        o if o.starts_with("the facility of this account") => "施設が利用停止中",
        o if o.starts_with("first enrollment") => "パスワードが未設定",
        _ => "拒否",
    }
    .to_string()
}

/// The details of a record as short phrases: 「変更前：有効、変更後：失効、理由：鍵の危殆化」.
pub(crate) fn detail_ja(detail: &Value, names: &Names) -> String {
    match detail {
        Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{}：{}", label_ja(k), value_ja(k, v, names)))
            .collect::<Vec<_>>()
            .join("、"),
        Value::Null => String::new(),
        other => value_ja("", other, names),
    }
}

fn label_ja(key: &str) -> &'static str {
    match key {
        "from" => "変更前",
        "to" => "変更後",
        "reason" => "理由",
        "because" => "理由",
        "role" => "役割",
        "status" => "状態",
        "kind" => "種別",
        "name" => "名称",
        "note" => "メモ",
        "outcome" => "対応結果",
        "queue" => "窓口",
        "channel" => "受付の経路",
        "count" => "回数",
        "first_at" => "最初",
        "last_at" => "最後",
        "at" | "retire_at" | "cancelled_retire_at" => "日時",
        "expires_at" => "有効期限",
        "not_after" => "証明書の有効期限",
        "certificate" | "serial" => "証明書",
        "new_serial" | "replaced_by" => "新しい証明書",
        "revoked" | "certificates" | "held_serials" | "held" | "serials" | "taken_over" => "対象の証明書",
        "device_id" => "端末",
        "user_id" | "manager_user_id" => "職員",
        "facility_id" => "施設",
        "from_facility" => "異動前の施設",
        "to_facility" => "異動先の施設",
        "fields" => "変更した項目",
        "caller" => "届出者（電話）",
        "callback" => "折り返しの電話番号",
        "delete_account" => "アカウント削除も行う",
        "escalation_id" => "緊急届出",
        "terms_version" => "利用規約の版",
        "personal_data" => "個人情報",
        "password_set" => "パスワードの設定",
        "activated" => "アカウントの有効化",
        "label" | "device_label" => "端末の名前",
        "settled_by" => "終了のきっかけ",
        "threshold_days" => "お知らせの時期（日前）",
        "event" => "通知の種類",
        "number" | "crl_number" => "番号",
        _ => "その他",
    }
}

fn value_ja(key: &str, v: &Value, names: &Names) -> String {
    match v {
        Value::Null => "なし".into(),
        Value::Bool(b) => if *b { "はい" } else { "いいえ" }.into(),
        Value::Number(n) if is_time(key) => {
            n.as_i64().and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok()).map_or(n.to_string(), local)
        }
        Value::Number(n) => match key {
            "user_id" | "manager_user_id" => names.user(&n.to_string()),
            "facility_id" | "from_facility" | "to_facility" => names.facility(&n.to_string()),
            _ => n.to_string(),
        },
        Value::String(s) => word_ja(key, s, names),
        Value::Array(items) if items.is_empty() => "なし".into(),
        Value::Array(items) => items.iter().map(|i| value_ja(key, i, names)).collect::<Vec<_>>().join("、"),
        Value::Object(_) => format!("（{}）", detail_ja(v, names)),
    }
}

fn is_time(key: &str) -> bool {
    key.ends_with("_at") || key == "not_after" || key == "at"
}

/// A word the code stores, in the pages' words.
fn word_ja(key: &str, s: &str, names: &Names) -> String {
    if is_time(key)
        && let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
    {
        return local(t);
    }
    if let Some(id) = s.strip_prefix("user:") {
        return names.user(id);
    }
    if let Ok(status) = s.parse::<CertStatus>() {
        return cert_ja(status).into();
    }
    if let Ok(reason) = s.parse::<Reason>() {
        return reason_ja(reason).into();
    }
    if let Ok(role) = s.parse::<Role>() {
        return role_ja(role).into();
    }
    let known = match (key, s) {
        (_, "invited") => "招待中（未登録）",
        (_, "active") => "利用中",
        (_, "retired") => "退職",
        (_, "deleted") => "削除済み",
        (_, "approved") => "承認済み",
        (_, "suspended") => "利用停止中",
        (_, "closed") => "廃止",
        (_, "internal") => "庁内",
        (_, "external") => "庁外",
        (_, "open") => "受付",
        (_, "claimed") => "対応中",
        (_, "resolved") => "対応済み",
        (_, "released") => "解除",
        (_, "rejected") => "取り下げ",
        ("queue", "manager") => "施設管理者",
        ("channel", "self") => "本人（緊急届出ページ）",
        ("channel", "phone") => "電話",
        ("channel", "manager") => "施設管理者",
        ("personal_data", "removed") => "削除済み",
        ("fields", "display_name") => "氏名",
        ("fields", "email") => "メールアドレス",
        ("fields", "role") => "役割",
        ("settled_by", _) => "端末の証明書の失効",
        ("because", "hold limit") => "一時停止の期限",
        ("because", "the new certificate was used") => "新しい証明書が使われた",
        ("because", "the grace period ended") => "切り替えの猶予期間が過ぎた",
        ("because", "renewed again before it was installed") => "取り込む前に更新し直した",
        ("event", "reported") => "届出",
        ("event", "escalated") => "行政管理課への移管",
        _ => "",
    };
    if !known.is_empty() {
        return known.into();
    }
    s.to_string()
}

/// A CRLReason, as the revoke form names it.
pub(crate) fn reason_ja(reason: Reason) -> &'static str {
    match reason {
        Reason::KeyCompromise => "鍵の危殆化（端末の紛失・盗難など）",
        Reason::AffiliationChanged => "所属の変更",
        Reason::Superseded => "別の証明書への切り替え",
        Reason::CessationOfOperation => "利用の終了",
        Reason::CertificateHold => "一時停止",
        Reason::PrivilegeWithdrawn => "権限の取り消し",
        Reason::Unspecified => "理由を特定しない",
        _ => "その他",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn details_read_as_phrases_with_names() {
        let names = Names {
            users: HashMap::from([(5, "千歳 花子（hanako）".to_string())]),
            facilities: HashMap::from([(2, "デイケア南".to_string())]),
        };
        let d = json!({"from": "valid", "to": "on_hold", "reason": "certificateHold", "facility_id": 2, "manager_user_id": 5});
        assert_eq!(
            detail_ja(&d, &names),
            "施設：デイケア南、変更前：有効、職員：千歳 花子（hanako）、理由：一時停止、変更後：一時停止中"
        );
        assert_eq!(actor_ja("user:5", &names), "千歳 花子（hanako）");
        assert_eq!(actor_ja("user:9", &names), "職員（番号 9）");
        assert_eq!(actor_ja("system:sla", &names), "システム（対応期限の経過）");
        assert_eq!(
            target_ja("POST /api/v1/enroll (no such code)", &names),
            "POST /api/v1/enroll（存在しない登録コード）"
        );
        assert_eq!(outcome_ja("wrong code (2 tries left)"), "登録コードの誤り（あと 2 回でロック）");
        assert_eq!(
            detail_ja(&json!({"queue": "admin_division", "held": []}), &names),
            "対象の証明書：なし、窓口：行政管理課"
        );
    }
}
