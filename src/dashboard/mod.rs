//! `edgeflow serve`: the monitoring dashboard over MySQL (read-only user). Documentation
//! for people and the JSON API: `dashboard/README.md`.
//!
//! | file         | what it owns                                                          |
//! |--------------|-----------------------------------------------------------------------|
//! | `config.rs`  | `[dashboard]` settings and their validation                           |
//! | `range.rs`   | time-range parameters, chart buckets, UTC calendar arithmetic         |
//! | `db.rs`      | every SQL statement (parameterised), read-only pool                   |
//! | `api.rs`     | the JSON API and the server-sent event stream                         |
//! | `billing.rs` | month-to-date 95th percentile and traffic, CSV export                 |
//! | `pages.rs`   | HTML shells (maud, escaped by construction)                           |
//! | `assets.rs`  | compiled-in script and styles, npm charting library read at start-up  |
//! | `guard.rs`   | token / basic auth, Host check, security headers                      |
//! | `live.rs`    | change probe that drives the live updates                             |
//!
//! [`app`] builds the whole router from an [`AppState`], so tests call it without a socket.

pub mod api;
pub mod assets;
pub mod billing;
pub mod config;
pub mod db;
pub mod guard;
pub mod live;
pub mod pages;
pub mod range;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tracing::{info, warn};

use crate::config::Settings;
use crate::sink::schema;

use self::assets::Assets;
use self::config::ServeConfig;
use self::db::Db;
use self::live::Live;

/// Domain → billing account.
pub type AccountLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("invalid dashboard configuration:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    #[error(transparent)]
    Assets(#[from] assets::AssetsError),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("schema is at version {found}; the dashboard needs {needed}: run `edgeflow migrate`")]
    Schema { found: u32, needed: u32 },
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: std::net::SocketAddr, error: std::io::Error },
    #[error("server: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for DashboardError {
    fn from(error: std::io::Error) -> Self {
        DashboardError::Io(error)
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServeConfig>,
    pub db: Db,
    pub assets: Arc<Assets>,
    pub live: Arc<Live>,
    pub accounts: AccountLookup,
}

impl AppState {
    pub fn new(config: ServeConfig, assets: Assets, accounts: AccountLookup) -> Result<AppState, DashboardError> {
        let db = Db::new(&config.mysql_url, config.max_connections, Duration::from_millis(config.query_timeout_ms))?;
        Ok(AppState { config: Arc::new(config), db, assets: Arc::new(assets), live: Arc::new(Live::default()), accounts })
    }
}

/// The dashboard's router: pages, JSON API, assets, behind the access guard.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/domains/{domain}", get(pages::domain))
        .route("/billing", get(pages::billing))
        .route("/assets/{file}", get(assets::serve))
        .route("/api", get(api::index))
        .route("/api/domains", get(api::domains))
        .route("/api/series", get(api::series))
        .route("/api/top_clients", get(api::top_clients))
        .route("/api/alerts", get(api::alerts))
        .route("/api/rejects", get(api::rejects))
        .route("/api/billing", get(api::billing))
        .route("/api/bandwidth", get(api::bandwidth))
        .route("/api/billing.csv", get(api::billing_csv))
        .route("/api/events", get(api::events))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::check))
        .layer(axum::middleware::map_response(guard::security_headers))
        .with_state(state)
}

/// Wall-clock Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// `edgeflow serve`: validates the settings, checks the schema, listens until Ctrl-C.
/// Prints `listening on http://ADDR` on standard output once the socket is bound (with
/// `--bind 127.0.0.1:0`, ADDR holds the port the system chose).
pub fn serve(settings: &Settings, bind: Option<String>) -> Result<(), DashboardError> {
    let mut raw = settings.dashboard.clone();
    if let Some(bind) = bind {
        raw.bind = bind;
    }
    let config = raw.validate().map_err(DashboardError::Config)?;
    let assets = Assets::load(&config.assets_dir)?;
    let rules = settings.decoder().rules().clone();
    let accounts: AccountLookup = Arc::new(move |domain: &str| rules.account(domain).map(str::to_owned));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let state = AppState::new(config, assets, accounts)?;
        let found = state.db.schema_version().await?;
        let needed = schema::latest_version();
        if found < needed {
            return Err(DashboardError::Schema { found, needed });
        }
        if found > needed {
            warn!(found, needed, "schema is newer than this edgeflow; some panels may miss data");
        }
        let poll = Duration::from_millis(state.config.live_poll_ms);
        let _prober = state.live.spawn_prober(state.db.clone(), poll);
        let addr = state.config.bind;
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| DashboardError::Bind { addr, error })?;
        let local = listener.local_addr()?;
        info!(addr = %local, auth = state.config.auth_token.is_some(), "dashboard listening");
        println!("listening on http://{local}");
        std::io::stdout().flush()?;
        let db = state.db.clone();
        // Not a graceful shutdown: event streams never end by themselves, and a read-only
        // server has nothing to finish.
        tokio::select! {
            result = axum::serve(listener, app(state)) => result?,
            () = shutdown_signal() => info!("dashboard stopping"),
        }
        db.disconnect().await;
        Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
