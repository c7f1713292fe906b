//! `Debug` for types that hold a secret (a password, an enrollment code, a
//! key, a bearer token, a URL with credentials): a `{:?}` in a log line or a
//! panic message must never print it.

/// The text a redacted field shows in `Debug`.
pub const REDACTED: &str = "[redacted]";

/// Implements `Debug` for a struct, printing the fields listed before `;`
/// and [`REDACTED`] in place of those listed after it:
/// `redacted_debug!(EnrollRequest { device_label, generate_key; code, password });`
/// Every field must be listed, so a new field is a compile error until it is
/// placed on one side.
#[macro_export]
macro_rules! redacted_debug {
    ($t:ident { $($shown:ident),* ; $($hidden:ident),* $(,)? }) => {
        impl ::std::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                // Destructured so that a field added later must be listed.
                let $t { $($shown,)* $($hidden: _,)* } = self;
                f.debug_struct(stringify!($t))
                    $(.field(stringify!($shown), $shown))*
                    $(.field(stringify!($hidden), &$crate::redact::REDACTED))*
                    .finish()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[allow(dead_code)]
    struct Login {
        user: String,
        password: String,
        code: Option<String>,
    }
    redacted_debug!(Login { user; password, code });

    #[test]
    fn hidden_fields_never_print() {
        let l = Login { user: "hanako".into(), password: "correct horse".into(), code: Some("12-ABCD".into()) };
        let text = format!("{l:?} {l:#?}");
        assert!(text.contains("hanako") && text.contains(super::REDACTED), "{text}");
        assert!(!text.contains("correct horse") && !text.contains("12-ABCD"), "{text}");
    }
}
