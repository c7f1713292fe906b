//! `connect-pki serve`: both listeners, until SIGINT or SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use axum::middleware;
use connect_pki_domain::Clock;
use connect_pki_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;
use crate::datadir::DataDir;
use crate::http::{api, body_limit, log_request, public};
use crate::state::{AppState, PublicCerts};

/// Runs the service until a shutdown signal arrives.
pub async fn serve(config: ServeConfig, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let dir = DataDir::new(&config.data_dir);
    let ca = dir.load(&config.public_url).context("loading the CA from the data directory")?;
    let store = Store::connect(&config.database_url).await?;
    let tls_config = crate::tls::server_config(&ca)?;
    let state = AppState {
        store: store.clone(),
        certs: Arc::new(PublicCerts::new(ca.root_der.clone(), ca.issuing_der.clone())),
        ca: Arc::new(ca.issuing),
        clock,
        settings: Arc::new(crate::state::Settings {
            enrollment_code_ttl: config.enrollment_code_ttl,
            ..crate::state::Settings::default()
        }),
    };

    let public_listener = TcpListener::bind(config.public_addr)
        .await
        .with_context(|| format!("cannot listen on {} (--public-addr)", config.public_addr))?;
    let api_listener = TcpListener::bind(config.api_addr)
        .await
        .with_context(|| format!("cannot listen on {} (--api-addr)", config.api_addr))?;
    let public_addr = public_listener.local_addr()?;
    let api_addr = api_listener.local_addr()?;
    tracing::info!(%public_addr, %api_addr, backend = ?store.backend(), "connect-pki listening");
    if let Some(path) = &config.ready_file {
        let tmp = path.with_extension("tmp");
        let body = serde_json::json!({"public_addr": public_addr, "api_addr": api_addr}).to_string();
        std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, path)).context("writing --ready-file")?;
    }

    let shutdown = CancellationToken::new();
    let (public_api, mtls_api, _) = api::routers(state.clone());
    let public_app = public::router(state.clone())
        .merge(public_api)
        .merge(crate::http::pages::router(state.clone()))
        .layer(body_limit())
        .layer(middleware::from_fn(log_request));
    let api_app = mtls_api
        .fallback(crate::http::error::no_route)
        .layer(body_limit())
        .layer(middleware::from_fn(log_request));

    let public_task = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(public_listener, public_app.into_make_service_with_connect_info::<std::net::SocketAddr>())
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
        })
    };
    let api_task = tokio::spawn(crate::tls::serve(api_listener, tls_config, api_app, shutdown.clone()));

    wait_for_signal().await;
    tracing::info!("shutting down");
    shutdown.cancel();
    let _ = api_task.await;
    public_task.await.context("public listener")?.context("public listener")?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
