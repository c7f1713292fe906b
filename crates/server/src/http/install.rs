//! Putting a certificate on the devices people have: which platform a
//! browser is on (from its User-Agent), the file that platform takes (an
//! Apple configuration profile for iPhone, iPad and Mac; the PKCS#12 for
//! Windows and Android) and its steps in Japanese. The same steps are
//! printable on their own page (`/install/{platform}`), which the code
//! slip names, for the person who installs on another device than the one
//! reading the slip.

use askama::Template;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use connect_pki_ca::profile::{ProfileNames, mobileconfig};
use connect_pki_ra::enrollment::base64;

use crate::http::state::AppState;

/// The platforms with steps of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Platform {
    Windows,
    /// iPhone and iPad (an iPad's Safari may say Macintosh: the Mac steps
    /// take the same profile, so a wrong guess still gets the right file).
    Iphone,
    Mac,
    Android,
}

impl Platform {
    pub(crate) const ALL: [Platform; 4] = [Platform::Windows, Platform::Iphone, Platform::Mac, Platform::Android];

    /// The platform a User-Agent names; `None` for anything else (then
    /// every platform's steps are offered).
    pub(crate) fn of_user_agent(ua: &str) -> Option<Platform> {
        // Android first: its User-Agent also says Linux, some say Mobile Safari.
        if ua.contains("Android") {
            Some(Platform::Android)
        } else if ua.contains("iPhone") || ua.contains("iPad") || ua.contains("iPod") {
            Some(Platform::Iphone)
        } else if ua.contains("Macintosh") || ua.contains("Mac OS X") {
            Some(Platform::Mac)
        } else if ua.contains("Windows") {
            Some(Platform::Windows)
        } else {
            None
        }
    }

    pub(crate) fn of_headers(headers: &HeaderMap) -> Option<Platform> {
        headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).and_then(Platform::of_user_agent)
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            Platform::Windows => "windows",
            Platform::Iphone => "iphone",
            Platform::Mac => "mac",
            Platform::Android => "android",
        }
    }

    pub(crate) fn name_ja(self) -> &'static str {
        match self {
            Platform::Windows => "Windows のパソコン",
            Platform::Iphone => "iPhone・iPad",
            Platform::Mac => "Mac",
            Platform::Android => "Android のスマートフォン・タブレット",
        }
    }

    /// Whether the platform takes the configuration profile.
    pub(crate) fn apple(self) -> bool {
        matches!(self, Platform::Iphone | Platform::Mac)
    }

    /// The steps, in order, as the person sees their screen.
    pub(crate) fn steps(self) -> &'static [&'static str] {
        match self {
            Platform::Windows => &[
                "「証明書ファイル（.p12）をダウンロード」を押し、ファイルを保存します。",
                "保存したファイルをダブルクリックすると「証明書のインポート ウィザード」が開きます。保存場所は「現在のユーザー」のまま「次へ」を押します。",
                "パスワードの欄に、画面に表示されたパスワードを入力し「次へ」を押します。",
                "「証明書の種類に基づいて、自動的に証明書ストアを選択する」のまま「次へ」、「完了」を押します。",
                "ブラウザー（Edge または Chrome）をすべて閉じて開き直し、電子@連絡帳を開きます。証明書の選択を求められたら、この証明書を選びます。",
            ],
            Platform::Iphone => &[
                "Safari でこの画面を開き、「構成プロファイル（.mobileconfig）をダウンロード」を押して「許可」を押します。",
                "「設定」アプリを開き、上の方の「プロファイルがダウンロードされました」を押します（表示されないときは「一般」→「VPNとデバイス管理」）。",
                "「インストール」を押し、端末のパスコード、続いて画面に表示されたパスワードを入力します。",
                "「設定」→「一般」→「情報」→「証明書信頼設定」で「ルート認証局」をオンにします。",
                "Safari で電子@連絡帳を開き、証明書を求められたら「続ける」を押します。",
            ],
            Platform::Mac => &[
                "「構成プロファイル（.mobileconfig）をダウンロード」を押し、ファイルを保存します。",
                "保存したファイルをダブルクリックし、「システム設定」→「一般」→「デバイス管理」（古い macOS では「プロファイル」）で「インストール」を押します。",
                "Mac のパスワード、続いて画面に表示されたパスワードを入力します。",
                "ブラウザーをすべて閉じて開き直し、電子@連絡帳を開きます。証明書の選択を求められたら、この証明書を選びます。",
            ],
            Platform::Android => &[
                "「証明書ファイル（.p12）をダウンロード」を押し、ファイルを保存します。",
                "「設定」→「セキュリティ」→「暗号化と認証情報」→「証明書のインストール」→「VPN とアプリユーザー証明書」を押し、保存したファイルを選びます（機種によって項目の名前が少し異なります）。",
                "画面に表示されたパスワードを入力し、証明書の名前（例：電子@連絡帳）を付けて「OK」を押します。",
                "Chrome で電子@連絡帳を開き、証明書の選択を求められたら、この証明書を選びます。",
            ],
        }
    }

    fn from_slug(slug: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.slug() == slug)
    }
}

/// A platform's steps, as the pages list them.
pub(crate) struct Steps {
    pub(crate) platform: Platform,
    pub(crate) slug: &'static str,
    pub(crate) name: &'static str,
    pub(crate) steps: &'static [&'static str],
}

impl From<Platform> for Steps {
    fn from(p: Platform) -> Self {
        Steps { platform: p, slug: p.slug(), name: p.name_ja(), steps: p.steps() }
    }
}

/// What a page that issued a certificate hands over, once: the files for
/// each platform, the password, and the steps for the platform the browser
/// is on (or every platform's, when it could not tell).
pub(crate) struct Handout {
    pub(crate) device_id: i64,
    pub(crate) serial: String,
    pub(crate) password: String,
    pub(crate) pkcs12_base64: String,
    pub(crate) profile_base64: String,
    /// The steps shown first: the browser's own platform, or all of them.
    pub(crate) shown: Vec<Steps>,
    /// The platforms whose printable steps are linked.
    pub(crate) others: Vec<Steps>,
    /// Whether the profile is offered first (an Apple device).
    pub(crate) apple_first: bool,
}

impl Handout {
    pub(crate) fn new(
        state: &AppState,
        headers: &HeaderMap,
        device_id: i64,
        serial: String,
        pkcs12: &[u8],
        password: String,
    ) -> anyhow::Result<Handout> {
        let names = ProfileNames {
            display_name: "電子@連絡帳 端末証明書",
            organization: "電子@連絡帳 CONNECT 証明書サービス",
            identifier: "jp.connect-pki",
            device: device_id,
        };
        let profile = mobileconfig(&names, pkcs12, &state.certs.root_der)?;
        let detected = Platform::of_headers(headers);
        let shown: Vec<Steps> = match detected {
            Some(p) => vec![p.into()],
            None => Platform::ALL.into_iter().map(Steps::from).collect(),
        };
        let others = Platform::ALL.into_iter().filter(|p| Some(*p) != detected).map(Steps::from).collect();
        Ok(Handout {
            device_id,
            serial,
            password,
            pkcs12_base64: base64(pkcs12),
            profile_base64: base64(&profile),
            shown,
            others,
            apple_first: detected.is_some_and(Platform::apple),
        })
    }
}

#[derive(Template)]
#[template(path = "install.html")]
struct InstallPage {
    shown: Vec<Steps>,
}

/// The printable steps: `/install` for every platform, `/install/{platform}` for one.
pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/install", get(all)).route("/install/{platform}", get(one))
}

async fn all() -> Response {
    crate::http::pages::page(
        StatusCode::OK,
        &InstallPage { shown: Platform::ALL.into_iter().map(Steps::from).collect() },
    )
}

async fn one(Path(slug): Path<String>) -> Response {
    match Platform::from_slug(&slug) {
        Some(p) => crate::http::pages::page(StatusCode::OK, &InstallPage { shown: vec![p.into()] }),
        None => {
            let message =
                "お探しの取り込み手順は見つかりませんでした。/install に、すべての端末の手順があります。".into();
            crate::http::pages::page(
                StatusCode::NOT_FOUND,
                &crate::http::pages::MessagePage { title: "取り込み手順", message },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Platform;

    #[test]
    fn browsers_are_told_apart_by_their_user_agent() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
                Some(Platform::Windows),
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                Some(Platform::Iphone),
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
                Some(Platform::Iphone),
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                Some(Platform::Mac),
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SH-53D) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
                Some(Platform::Android),
            ),
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36", None),
            ("curl/8.5.0", None),
        ];
        for (ua, want) in cases {
            assert_eq!(Platform::of_user_agent(ua), want, "{ua}");
        }
    }
}
