//! Static files. The dashboard's own script and style sheet are compiled in
//! (`dashboard/static/`); the charting library comes from npm (`dashboard/package.json`,
//! installed by `npm ci --prefix dashboard`, which `scripts/setup.sh` runs) and is read from
//! `<assets_dir>/node_modules` once at start-up, so nothing third-party is pasted into the
//! repository and a missing install is one clear error instead of a page without charts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;

#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    #[error("dashboard asset {path} is missing ({error}): run `npm ci --prefix dashboard` (scripts/setup.sh does) or set dashboard.assets_dir")]
    Missing { path: PathBuf, error: std::io::Error },
}

struct Asset {
    body: Vec<u8>,
    content_type: &'static str,
    cache_control: &'static str,
}

pub struct Assets {
    files: BTreeMap<&'static str, Asset>,
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Front-end packages: URL name and path under `assets_dir`.
pub const VENDOR: [(&str, &str, &str); 2] = [
    ("uPlot.iife.min.js", "node_modules/uplot/dist/uPlot.iife.min.js", JS),
    ("uPlot.min.css", "node_modules/uplot/dist/uPlot.min.css", CSS),
];

impl Assets {
    /// The built-in files plus the npm packages under `dir`.
    pub fn load(dir: &Path) -> Result<Assets, AssetsError> {
        let mut assets = Assets::builtin();
        for (name, relative, content_type) in VENDOR {
            let path = dir.join(relative);
            let body = std::fs::read(&path).map_err(|error| AssetsError::Missing { path, error })?;
            assets.files.insert(name, Asset { body, content_type, cache_control: "public, max-age=86400" });
        }
        Ok(assets)
    }

    /// Only the compiled-in files (router tests that do not draw charts).
    pub fn builtin() -> Assets {
        let own = |body: &'static str, content_type| Asset {
            body: body.as_bytes().to_vec(),
            content_type,
            cache_control: "no-cache",
        };
        let mut files = BTreeMap::new();
        files.insert("app.js", own(include_str!("../../dashboard/static/app.js"), JS));
        files.insert("style.css", own(include_str!("../../dashboard/static/style.css"), CSS));
        files.insert("favicon.svg", own(include_str!("../../dashboard/static/favicon.svg"), "image/svg+xml"));
        Assets { files }
    }
}

pub async fn serve(State(state): State<AppState>, UrlPath(name): UrlPath<String>) -> Response {
    match state.assets.files.get(name.as_str()) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static(asset.cache_control)),
            ],
            asset.body.clone(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}
