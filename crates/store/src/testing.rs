//! Test databases for both backends, shared by every crate's tests.
//!
//! SQLite: a file in a fresh temporary directory. PostgreSQL: a database of
//! its own, created on the server at `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and dropped when the guard
//! goes, so tests run in parallel without seeing each other.

use crate::{Backend, Store, StoreError};

/// The server the PostgreSQL tests use.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database that exists while this value lives.
#[derive(Debug)]
pub struct TestDb {
    /// The URL to hand to `Store::connect` or to the binary.
    pub url: String,
    backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    /// A fresh, empty database on `backend`. Panics with the reason when the
    /// backend is unreachable: a test that needs PostgreSQL fails without it.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                Self { url, backend, _dir: Some(dir), pg_name: None }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let mut bytes = [0u8; 8];
                getrandom::fill(&mut bytes).expect("random");
                let name = format!("cpki_test_{}", hex::encode(bytes));
                let mut conn = pg_connect(&admin).await;
                sqlx::query(&format!("create database {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("cannot create test database on {admin}: {e}"));
                let mut url = url::Url::parse(&admin).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&format!("/{name}"));
                Self { url: url.to_string(), backend, _dir: None, pg_name: Some(name) }
            }
        }
    }

    /// The backend of this database.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Result<Store, StoreError> {
        Store::connect(&self.url).await
    }
}

async fn pg_connect(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is needed for this test and is not reachable at {url}: {e}\n\
             Start it (the README's test command does) or set TEST_DATABASE_URL."
        )
    })
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside any async context we may block on, so the cleanup
        // gets a small runtime of its own on a plain thread.
        let admin = postgres_admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let mut conn = pg_connect(&admin).await;
                    let _ =
                        sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut conn).await;
                });
            }
        })
        .join();
    }
}

/// Runs the async test body `$body` (a fn taking a `TestDb`) once per backend,
/// as two separate tests named `sqlite` and `postgres` in a module `$name`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body($crate::testing::TestDb::new($crate::Backend::Sqlite).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body($crate::testing::TestDb::new($crate::Backend::Postgres).await).await
            }
        }
    };
}

/// What a store test bootstraps a database with: the city's facility and its
/// first administrator, signed in as `login_id`.
pub fn bootstrap_input(login_id: &str) -> crate::BootstrapInput {
    use connect_pki_domain::{FacilityKind, Role};
    crate::BootstrapInput {
        facility: crate::NewFacility {
            name: "千歳市 総務部行政管理課".into(),
            kind: FacilityKind::Internal,
            address: "千歳市東雲町2丁目34番地".into(),
            department: None,
        },
        admin: crate::NewUser {
            login_id: login_id.into(),
            display_name: "情報システム係".into(),
            email: "it@example.test".into(),
            role: Role::AdminDivision,
        },
        device_label: "bootstrap".into(),
    }
}
