//! The traffic model: a catalog (domains, clients, user agents) built once from the seed, and
//! the per-request sampler. Sampling never looks at the output format, so the same seed yields
//! the same requests in every format, with or without the Filebeat envelope.
//!
//! Order of decisions for one request: domain (Zipf) -> client (Zipf) -> status (global mix) ->
//! content class (from the domain's kind and the status) -> method -> path -> cache status and
//! upstreams -> body and header sizes -> timings -> referer, X-Forwarded-For chain, user.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::Rng;

use super::dist::{chance, lognormal, pareto, pick, unit, GenRng, Zipf};
use super::render::{
    push_escaped_default, push_escaped_nginx_json, push_hex, push_padded, push_u64,
};

/// HTTP method of a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// `$upstream_cache_status`; `Unset` is the variable not being set (no cache involved), which
/// nginx writes as `-` (`escape=default`) or `""` (`escape=json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CacheStatus {
    Hit,
    Miss,
    Expired,
    Stale,
    Updating,
    Revalidated,
    Bypass,
    #[default]
    Unset,
}

impl CacheStatus {
    /// The value nginx logs, `None` when the variable is not set.
    pub fn as_nginx(self) -> Option<&'static str> {
        Some(match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Expired => "EXPIRED",
            CacheStatus::Stale => "STALE",
            CacheStatus::Updating => "UPDATING",
            CacheStatus::Revalidated => "REVALIDATED",
            CacheStatus::Bypass => "BYPASS",
            CacheStatus::Unset => return None,
        })
    }
}

/// What a domain serves; decides its name and its content mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DomainKind {
    /// `www.shop-NN.example`: pages, scripts, images, a little API.
    Shop,
    /// `cdn.media-NN.example`: HLS video segments and playlists, thumbnails.
    Media,
    /// `api.app-NN.example`: JSON API.
    App,
    /// `dl.files-NN.example`: large downloads.
    Files,
}

impl DomainKind {
    fn prefix(self) -> &'static str {
        match self {
            DomainKind::Shop => "www.shop-",
            DomainKind::Media => "cdn.media-",
            DomainKind::App => "api.app-",
            DomainKind::Files => "dl.files-",
        }
    }
}

/// Content class of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    Page,
    Static,
    Image,
    Video,
    Playlist,
    Api,
    Download,
    Misc,
    Scanner,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Proto {
    Http10,
    #[default]
    Http11,
    Http2,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Http10 => "HTTP/1.0",
            Proto::Http11 => "HTTP/1.1",
            Proto::Http2 => "HTTP/2.0",
        }
    }
}

/// User agents with their share among ordinary clients. `None` is a request without the
/// header. Three are there to exercise escaping: a `"` and a `\` (ScanBot), a tab and
/// non-ASCII bytes (the tablet), and the missing header.
pub(super) const USER_AGENTS: &[(u32, Option<&str>)] = &[
    (280, Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")),
    (180, Some("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1")),
    (160, Some("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36")),
    (80, Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15")),
    (50, Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0")),
    (40, Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0")),
    (30, Some("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")),
    (40, Some("okhttp/4.12.0")),
    (30, Some("AppleCoreMedia/1.0.0.22B83 (iPhone; U; CPU OS 18_1 like Mac OS X; en_us)")),
    (20, Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")),
    (10, Some("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)")),
    (15, Some("curl/8.5.0")),
    (10, Some("python-requests/2.32.3")),
    (5, Some("Mozilla/5.0 (compatible; ScanBot/2.1; +\"https://scan.example/bot\"; C:\\probe)")),
    (5, None),
    (3, Some("Mozilla/5.0 (Linux; Android 14; Café\tTab) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")),
];

pub(super) const UA_CURL: u8 = 11;
pub(super) const UA_PYTHON: u8 = 12;
pub(super) const UA_SCANBOT: u8 = 13;

pub(super) struct Domain {
    pub name: Arc<str>,
    pub kind: DomainKind,
    /// Content hashes of the current builds' assets (`app.<hash>.js`).
    pub hashes: [Box<str>; 3],
}

/// One client, in one cache line: the sampler picks among a large table at random.
#[repr(align(64))]
pub(super) struct Client {
    pub ip: IpAddr,
    /// Index into [`USER_AGENTS`]; a client keeps its user agent.
    pub ua: u8,
    len: u8,
    text: [u8; 39],
}

impl Client {
    fn new(ip: IpAddr, ua: u8) -> Self {
        let s = ip.to_string(); // at most 39 bytes for the addresses we make
        let mut text = [0u8; 39];
        text[..s.len()].copy_from_slice(s.as_bytes());
        Client {
            ip,
            ua,
            len: s.len() as u8,
            text,
        }
    }

    /// The address as nginx writes it.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.text[..usize::from(self.len)]).unwrap_or_default()
    }
}

pub(super) struct Catalog {
    /// In popularity order: index 0 is the most requested domain.
    pub domains: Vec<Domain>,
    pub domain_pick: Zipf,
    /// In popularity order: index 0 is the heaviest hitter.
    pub clients: Vec<Client>,
    pub client_pick: Zipf,
    /// Each user agent as written under `escape=default` and `escape=json` (escaped once).
    pub ua_default: Vec<String>,
    pub ua_json: Vec<String>,
}

impl Catalog {
    pub fn build<R: Rng>(
        rng: &mut R,
        domains: usize,
        clients: usize,
        domain_zipf: f64,
        client_zipf: f64,
        ipv6_fraction: f64,
    ) -> Self {
        let mut counters = [0u32; 4];
        let mut doms: Vec<Domain> = (0..domains)
            .map(|_| {
                let kind = pick(
                    rng,
                    &[
                        (35, DomainKind::Shop),
                        (25, DomainKind::Media),
                        (25, DomainKind::App),
                        (15, DomainKind::Files),
                    ],
                );
                let n = &mut counters[kind as usize];
                *n += 1;
                let mut name = String::with_capacity(24);
                name.push_str(kind.prefix());
                push_padded(&mut name, u64::from(*n), 2);
                name.push_str(".example");
                let mut hash = || {
                    let mut h = String::with_capacity(8);
                    push_hex(&mut h, rng.random::<u32>().into(), 8);
                    h.into_boxed_str()
                };
                let hashes = [hash(), hash(), hash()];
                Domain {
                    name: name.into(),
                    kind,
                    hashes,
                }
            })
            .collect();
        // Popularity must not follow the numbering.
        doms.shuffle(rng);

        let ua_table: Vec<(u32, u8)> = USER_AGENTS
            .iter()
            .enumerate()
            .map(|(i, &(w, _))| (w, i as u8))
            .collect();
        let mut seen = HashSet::with_capacity(clients);
        let clis = (0..clients)
            .map(|rank| {
                let ip = loop {
                    let ip = if chance(rng, ipv6_fraction) {
                        random_ipv6(rng)
                    } else {
                        random_ipv4(rng)
                    };
                    // Membership only; iteration order never leaks.
                    if seen.insert(ip) {
                        break ip;
                    }
                };
                // The heaviest hitters are scripts: the abuse view should show them.
                let ua = match rank {
                    0 => UA_PYTHON,
                    1 => UA_CURL,
                    2 => UA_SCANBOT,
                    _ => pick(rng, &ua_table),
                };
                Client::new(ip, ua)
            })
            .collect();
        Catalog {
            domains: doms,
            domain_pick: Zipf::new(domains, domain_zipf),
            clients: clis,
            client_pick: Zipf::new(clients, client_zipf),
            ua_default: USER_AGENTS
                .iter()
                .map(|&(_, ua)| escaped(ua, push_escaped_default, "-"))
                .collect(),
            ua_json: USER_AGENTS
                .iter()
                .map(|&(_, ua)| escaped(ua, push_escaped_nginx_json, ""))
                .collect(),
        }
    }
}

fn escaped(s: Option<&str>, esc: fn(&mut String, &str), empty: &str) -> String {
    let mut out = String::new();
    match s {
        Some(s) if !s.is_empty() => esc(&mut out, s),
        _ => out.push_str(empty),
    }
    out
}

/// A global-unicast-looking IPv4 address outside private, shared, loopback, link-local,
/// documentation, benchmarking and multicast ranges (so none looks like a trusted proxy).
fn random_ipv4<R: Rng>(rng: &mut R) -> IpAddr {
    loop {
        let a = Ipv4Addr::from(rng.random::<u32>());
        let [o1, o2, o3, o4] = a.octets();
        let excluded = o1 == 0
            || o1 == 10
            || o1 == 127
            || o1 >= 224
            || (o1 == 100 && (64..128).contains(&o2))
            || (o1 == 169 && o2 == 254)
            || (o1 == 172 && (16..32).contains(&o2))
            || (o1 == 192 && o2 == 168)
            || (o1 == 192 && o2 == 0 && (o3 == 0 || o3 == 2))
            || (o1 == 198 && (o2 == 18 || o2 == 19))
            || (o1 == 198 && o2 == 51 && o3 == 100)
            || (o1 == 203 && o2 == 0 && o3 == 113)
            || o4 == 0
            || o4 == 255;
        if !excluded {
            return IpAddr::V4(a);
        }
    }
}

/// An address in the documentation prefix 2001:db8::/32; some with a `::` run.
fn random_ipv6<R: Rng>(rng: &mut R) -> IpAddr {
    let mut g = [0u16; 8];
    g[0] = 0x2001;
    g[1] = 0x0db8;
    for x in &mut g[2..] {
        *x = rng.random();
    }
    match rng.random_range(0..10) {
        0..=2 => {
            g[4] = 0;
            g[5] = 0;
        }
        3 => {
            g[4] = 0;
            g[5] = 0;
            g[6] = 0;
        }
        _ => {}
    }
    IpAddr::V6(Ipv6Addr::new(
        g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7],
    ))
}

/// Reused text buffers of one request.
#[derive(Default)]
pub(super) struct TextScratch {
    /// Request target (path and query), raw (unescaped).
    pub path: String,
    /// `Referer`, empty when absent.
    pub referer: String,
    /// Hops before the client in X-Forwarded-For, each followed by `", "`; empty for none.
    pub xff_prefix: String,
}

/// One sampled request: everything needed to render it, and the ground truth.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Request {
    pub domain: usize,
    pub client: usize,
    /// The client's user agent (index into [`USER_AGENTS`]).
    pub ua: u8,
    /// Which load balancer forwarded it (index into `render::LOAD_BALANCERS`).
    pub lb: u8,
    pub method: Method,
    pub proto: Proto,
    pub status: u16,
    pub body: u64,
    pub bytes_sent: u64,
    pub request_ms: u64,
    /// Number of upstream attempts (0: none, `$upstream_response_time` is unset).
    pub upstreams: u8,
    pub upstream_ms: [u64; 2],
    pub cache: CacheStatus,
    pub remote_user: Option<&'static str>,
}

/// Status mix, parts per 10 000.
pub(super) const STATUS_MIX: &[(u32, u16)] = &[
    (8500, 200),
    (300, 206),
    (600, 304),
    (100, 301),
    (100, 302),
    (250, 404),
    (50, 403),
    (30, 499),
    (20, 500),
    (25, 502),
    (10, 503),
    (15, 504),
];

const CACHEABLE: &[(u32, CacheStatus)] = &[
    (70, CacheStatus::Hit),
    (18, CacheStatus::Miss),
    (5, CacheStatus::Expired),
    (2, CacheStatus::Revalidated),
    (1, CacheStatus::Stale),
    (1, CacheStatus::Updating),
    (3, CacheStatus::Unset),
];
const PAGE: &[(u32, CacheStatus)] = &[
    (30, CacheStatus::Hit),
    (35, CacheStatus::Miss),
    (10, CacheStatus::Expired),
    (20, CacheStatus::Bypass),
    (5, CacheStatus::Unset),
];
const API_READ: &[(u32, CacheStatus)] = &[
    (45, CacheStatus::Bypass),
    (35, CacheStatus::Miss),
    (8, CacheStatus::Expired),
    (7, CacheStatus::Hit),
    (5, CacheStatus::Unset),
];
const API_WRITE: &[(u32, CacheStatus)] = &[(70, CacheStatus::Unset), (30, CacheStatus::Bypass)];
const SCANNER: &[(u32, CacheStatus)] = &[(60, CacheStatus::Miss), (40, CacheStatus::Unset)];
const REDIRECT: &[(u32, CacheStatus)] = &[
    (60, CacheStatus::Bypass),
    (30, CacheStatus::Miss),
    (10, CacheStatus::Unset),
];

const CATEGORIES: &[&str] = &[
    "shoes", "outdoor", "kitchen", "toys", "books", "garden", "sale",
];
const TERMS: &[&str] = &[
    "red+shoes",
    "tent",
    "coffee+grinder",
    "lego",
    "gift+card",
    "rain+jacket",
];
const RENDITIONS: &[&str] = &["360p", "720p", "1080p"];
const PRODUCTS: &[&str] = &["agent", "cli", "desktop", "sdk", "server"];
const PACKAGES: &[&str] = &[
    "linux-amd64.tar.gz",
    "linux-arm64.tar.gz",
    "darwin-arm64.dmg",
    "windows-x64.exe",
    "windows-x64.zip",
];
const USERS: &[&str] = &["alice", "bob", "deploy"];
const FORBIDDEN: &[&str] = &[
    "/.git/config",
    "/.env",
    "/server-status",
    "/admin/",
    "/.htaccess",
    "/wp-admin/",
];
/// Probes that end in 404. Two carry bytes nginx escapes: a `\` (ThinkPHP) and `"` (XSS).
const PROBES: &[&str] = &[
    "/wp-login.php",
    "/xmlrpc.php",
    "/phpmyadmin/index.php",
    "/.aws/credentials",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/cgi-bin/luci/;stok=/locale",
    "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=Hello",
    "/search?q=\"><script>alert(1)</script>",
];

fn content_class<R: Rng>(rng: &mut R, kind: DomainKind) -> Class {
    use Class::*;
    match kind {
        DomainKind::Shop => pick(
            rng,
            &[(28, Page), (30, Static), (32, Image), (7, Api), (3, Misc)],
        ),
        DomainKind::Media => pick(
            rng,
            &[
                (55, Video),
                (10, Playlist),
                (28, Image),
                (4, Page),
                (3, Misc),
            ],
        ),
        DomainKind::App => pick(rng, &[(88, Api), (5, Static), (5, Misc), (2, Page)]),
        DomainKind::Files => pick(rng, &[(70, Download), (15, Page), (10, Image), (5, Misc)]),
    }
}

fn class_for<R: Rng>(rng: &mut R, kind: DomainKind, status: u16) -> Class {
    use Class::*;
    match status {
        206 => {
            if kind == DomainKind::Media {
                Video
            } else {
                Download
            }
        }
        301 | 302 => Page,
        403 => Scanner,
        404 => {
            if chance(rng, 0.4) {
                Scanner
            } else {
                content_class(rng, kind)
            }
        }
        304 => match content_class(rng, kind) {
            Api => Static,
            c => c,
        },
        499 => match kind {
            DomainKind::Media => Video,
            DomainKind::Files => Download,
            _ => Api,
        },
        500 | 502 | 504 => match kind {
            DomainKind::Shop => pick(rng, &[(50, Page), (50, Api)]),
            DomainKind::App => Api,
            DomainKind::Media => pick(rng, &[(70, Video), (30, Playlist)]),
            DomainKind::Files => pick(rng, &[(70, Download), (30, Page)]),
        },
        _ => content_class(rng, kind),
    }
}

/// An id skewed towards small numbers (popular products, videos).
fn skewed_id<R: Rng>(rng: &mut R, max: u64, power: i32) -> u64 {
    (unit(rng).powi(power) * max as f64) as u64 + 1
}

fn push_one(out: &mut String, list: &[&str], i: usize) {
    out.push_str(list[i % list.len()]);
}

fn push_path<R: Rng>(
    rng: &mut R,
    class: Class,
    method: Method,
    status: u16,
    dom: &Domain,
    out: &mut String,
) {
    out.clear();
    let r: usize = rng.random_range(0..1000);
    match class {
        Class::Page => match dom.kind {
            DomainKind::Shop => match r % 10 {
                0 | 1 => out.push('/'),
                2..=5 => {
                    out.push_str("/products/");
                    push_u64(out, skewed_id(rng, 5000, 2));
                }
                6 | 7 => {
                    out.push_str("/category/");
                    push_one(out, CATEGORIES, r / 10);
                }
                8 => {
                    out.push_str("/search?q=");
                    push_one(out, TERMS, r / 10);
                }
                _ => out.push_str(if status == 302 { "/account" } else { "/cart" }),
            },
            DomainKind::Media => {
                if r.is_multiple_of(3) {
                    out.push('/');
                } else {
                    out.push_str("/watch/v");
                    push_padded(out, skewed_id(rng, 2000, 3), 5);
                }
            }
            DomainKind::App => out.push_str(if r.is_multiple_of(2) {
                "/"
            } else {
                "/docs/quickstart"
            }),
            DomainKind::Files => match r % 3 {
                0 => out.push('/'),
                1 => out.push_str("/releases"),
                _ => {
                    out.push_str("/releases/v3.");
                    push_u64(out, (r / 3 % 12) as u64);
                }
            },
        },
        Class::Static => {
            let hash = &dom.hashes[r % 3];
            if dom.kind == DomainKind::App {
                out.push_str("/static/sdk.");
                out.push_str(hash);
                out.push_str(".js");
            } else {
                match r % 6 {
                    0 | 1 => {
                        out.push_str("/static/app.");
                        out.push_str(hash);
                        out.push_str(".js");
                    }
                    2 => {
                        out.push_str("/static/vendor.");
                        out.push_str(hash);
                        out.push_str(".js");
                    }
                    3 | 4 => {
                        out.push_str("/static/main.");
                        out.push_str(hash);
                        out.push_str(".css");
                    }
                    _ => out.push_str(if r.is_multiple_of(2) {
                        "/static/fonts/inter-400.woff2"
                    } else {
                        "/static/fonts/inter-600.woff2"
                    }),
                }
            }
        }
        Class::Image => match dom.kind {
            DomainKind::Shop => {
                if r.is_multiple_of(8) {
                    out.push_str("/img/banners/");
                    push_u64(out, (r / 8 % 12) as u64);
                    out.push_str(".webp");
                } else {
                    out.push_str("/img/products/");
                    push_u64(out, skewed_id(rng, 5000, 2));
                    out.push_str(["-320.jpg", "-640.jpg", "-1280.jpg"][r % 3]);
                }
            }
            DomainKind::Media => {
                out.push_str("/img/thumbs/v");
                push_padded(out, skewed_id(rng, 2000, 3), 5);
                out.push('-');
                push_u64(out, (r % 8) as u64);
                out.push_str(".jpg");
            }
            _ => {
                out.push_str("/img/screens/");
                push_u64(out, (r % 20) as u64);
                out.push_str(".png");
            }
        },
        Class::Video | Class::Playlist => {
            out.push_str("/video/v");
            push_padded(out, skewed_id(rng, 2000, 3), 5);
            if class == Class::Playlist && r.is_multiple_of(4) {
                out.push_str("/master.m3u8");
            } else {
                out.push('/');
                push_one(out, RENDITIONS, r);
                if class == Class::Playlist {
                    out.push_str("/index.m3u8");
                } else {
                    out.push_str("/seg-");
                    push_padded(out, rng.random_range(0..300), 5);
                    out.push_str(".ts");
                }
            }
        }
        Class::Api => match method {
            Method::Post => out.push_str(
                [
                    "/api/v1/events",
                    "/api/v1/login",
                    "/api/v1/orders",
                    "/api/v1/cart/items",
                ][r % 4],
            ),
            Method::Put => {
                out.push_str("/api/v1/users/");
                push_u64(out, skewed_id(rng, 100_000, 1));
            }
            Method::Delete => {
                out.push_str("/api/v1/cart/items/");
                push_u64(out, skewed_id(rng, 5000, 2));
            }
            _ => match r % 5 {
                0 => {
                    out.push_str("/api/v1/products/");
                    push_u64(out, skewed_id(rng, 5000, 2));
                }
                1 => {
                    out.push_str("/api/v1/users/");
                    push_u64(out, skewed_id(rng, 100_000, 1));
                }
                2 => {
                    out.push_str("/api/v1/orders?page=");
                    push_u64(out, (r / 5 % 10) as u64 + 1);
                }
                3 => {
                    out.push_str("/api/v2/feed?cursor=");
                    push_hex(out, rng.random::<u64>(), 16);
                    out.push_str("&limit=20");
                }
                _ => out.push_str("/api/v1/cart"),
            },
        },
        Class::Download => {
            if dom.kind == DomainKind::Shop {
                out.push_str("/media/promo-");
                push_u64(out, (r % 6) as u64 + 1);
                out.push_str(".mp4");
            } else {
                out.push_str("/downloads/");
                push_one(out, PRODUCTS, r);
                out.push_str("-3.");
                push_u64(out, (r / 5 % 12) as u64);
                out.push('.');
                push_u64(out, (r / 60 % 4) as u64);
                out.push('-');
                push_one(out, PACKAGES, r / 7);
            }
        }
        Class::Misc => {
            let list: &[&str] = if dom.kind == DomainKind::App {
                &["/favicon.ico", "/healthz", "/robots.txt", "/healthz"]
            } else {
                &[
                    "/favicon.ico",
                    "/favicon.ico",
                    "/robots.txt",
                    "/sitemap.xml",
                    "/apple-touch-icon.png",
                ]
            };
            push_one(out, list, r);
        }
        Class::Scanner => push_one(out, if status == 403 { FORBIDDEN } else { PROBES }, r),
    }
}

fn push_referer<R: Rng>(rng: &mut R, class: Class, dom: &Domain, out: &mut String) {
    out.clear();
    let x = unit(rng);
    let site = |out: &mut String, scheme: &str| {
        out.push_str(scheme);
        out.push_str(&dom.name);
        out.push('/');
    };
    match class {
        Class::Page => {
            if x < 0.45 {
            } else if x < 0.75 {
                out.push_str("https://www.example.com/search?q=");
                out.push_str(TERMS[(x * 1000.0) as usize % TERMS.len()]);
            } else {
                site(out, "https://");
            }
        }
        Class::Static | Class::Image | Class::Playlist | Class::Video => {
            if x < 0.08 {
            } else if x < 0.5 && dom.kind == DomainKind::Shop {
                site(out, "https://");
                out.push_str("products/");
                push_u64(out, skewed_id(rng, 5000, 2));
            } else {
                site(out, "https://");
            }
        }
        Class::Api => {
            if x >= 0.3 {
                site(out, "https://");
            }
        }
        Class::Download => {
            if x >= 0.4 {
                site(out, "https://");
                out.push_str("releases");
            }
        }
        Class::Misc | Class::Scanner => {
            if x >= 0.9 {
                site(out, "http://");
            }
        }
    }
}

/// Hops a request passed before the address that reached our load balancer: a client-side
/// proxy's private address, or a forged public one.
fn push_xff_prefix<R: Rng>(rng: &mut R, out: &mut String) {
    out.clear();
    if !chance(rng, 0.1) {
        return;
    }
    let hops = if chance(rng, 0.8) { 1 } else { 2 };
    for _ in 0..hops {
        match rng.random_range(0..10) {
            0..=4 => out.push_str("192.168."),
            5..=7 => out.push_str("172.16."),
            _ => out.push_str("198.51.100."),
        }
        if out.ends_with("100.") {
            push_u64(out, rng.random_range(1..255));
        } else {
            push_u64(out, rng.random_range(0..256));
            out.push('.');
            push_u64(out, rng.random_range(1..255));
        }
        out.push_str(", ");
    }
}

fn upstream_median_ms(class: Class) -> f64 {
    match class {
        Class::Page => 45.0,
        Class::Static => 20.0,
        Class::Image => 25.0,
        Class::Video => 35.0,
        Class::Playlist => 12.0,
        Class::Api => 40.0,
        Class::Download => 60.0,
        Class::Misc => 8.0,
        Class::Scanner => 15.0,
    }
}

/// Samples one request; its texts go to `text`.
pub(super) fn sample_request(rng: &mut GenRng, cat: &Catalog, text: &mut TextScratch) -> Request {
    let domain = cat.domain_pick.sample(rng);
    let client = cat.client_pick.sample(rng);
    // Read the client's entry now: its cache miss overlaps the rest of the sampling.
    let ua = cat.clients[client].ua;
    let dom = &cat.domains[domain];
    let lb = rng.random_range(0..2u8);
    let status = pick(rng, STATUS_MIX);
    let class = class_for(rng, dom.kind, status);
    let method = match class {
        Class::Api => pick(
            rng,
            &[
                (70, Method::Get),
                (25, Method::Post),
                (3, Method::Put),
                (2, Method::Delete),
            ],
        ),
        Class::Scanner => {
            if chance(rng, 0.15) {
                Method::Post
            } else {
                Method::Get
            }
        }
        Class::Page | Class::Static | Class::Image | Class::Download | Class::Misc
            if status == 200 && chance(rng, 0.015) =>
        {
            Method::Head
        }
        _ => Method::Get,
    };
    push_path(rng, class, method, status, dom, &mut text.path);
    let proto = pick(
        rng,
        &[(45, Proto::Http2), (54, Proto::Http11), (1, Proto::Http10)],
    );

    // Who answered: nginx itself (redirect rules, deny, limit_req, a try_files miss) or an
    // upstream, possibly through the cache.
    let nginx_generated = match status {
        301 | 403 | 503 => true,
        404 => class == Class::Scanner && chance(rng, 0.5),
        _ => false,
    };
    let cache = if nginx_generated {
        CacheStatus::Unset
    } else {
        let c = match class {
            Class::Static
            | Class::Image
            | Class::Video
            | Class::Playlist
            | Class::Download
            | Class::Misc => pick(rng, CACHEABLE),
            Class::Page => pick(rng, PAGE),
            Class::Api if method == Method::Get => pick(rng, API_READ),
            Class::Api => pick(rng, API_WRITE),
            Class::Scanner => pick(rng, SCANNER),
        };
        match status {
            302 => pick(rng, REDIRECT),
            499 | 500 | 502 | 504 => match c {
                CacheStatus::Hit
                | CacheStatus::Stale
                | CacheStatus::Updating
                | CacheStatus::Revalidated => CacheStatus::Miss,
                c => c,
            },
            _ => c,
        }
    };
    let upstreams: u8 =
        if nginx_generated || matches!(cache, CacheStatus::Hit | CacheStatus::Updating) {
            0
        } else {
            let two = match status {
                502 => 0.3,
                504 => 0.1,
                _ => 0.01,
            };
            if chance(rng, two) {
                2
            } else {
                1
            }
        };

    let body = match status {
        304 | 499 => 0,
        _ if method == Method::Head => 0,
        // nginx's own error pages (server_tokens off).
        301 => 162,
        403 => 146,
        502 => 150,
        503 => 190,
        504 => 160,
        404 if nginx_generated => 146,
        404 if class == Class::Api => lognormal(rng, 90.0, 0.3) as u64,
        404 => lognormal(rng, 2500.0, 0.6) as u64,
        500 => lognormal(rng, 400.0, 0.8) as u64,
        302 => rng.random_range(0..=200),
        206 if class == Class::Video => pareto(rng, 300_000.0, 1.6, 25e6) as u64,
        206 => pareto(rng, 262_144.0, 1.3, 16_777_216.0) as u64,
        _ => match class {
            Class::Page => lognormal(rng, 18_000.0, 0.7) as u64,
            Class::Static => lognormal(rng, 45_000.0, 1.1) as u64,
            Class::Image => lognormal(rng, 35_000.0, 1.0) as u64,
            Class::Video => pareto(rng, 400_000.0, 1.6, 25e6) as u64,
            Class::Playlist => rng.random_range(300..3000),
            Class::Api if method == Method::Get => lognormal(rng, 1200.0, 1.2) as u64,
            Class::Api => lognormal(rng, 150.0, 0.8) as u64,
            Class::Download => pareto(rng, 2e6, 1.1, 4e9) as u64,
            Class::Misc => lognormal(rng, 4000.0, 1.0) as u64,
            Class::Scanner => lognormal(rng, 2500.0, 0.6) as u64,
        },
    };
    let cacheable = matches!(
        class,
        Class::Static | Class::Image | Class::Video | Class::Playlist | Class::Download
    );
    let header: u64 = match status {
        499 => 0,
        304 => rng.random_range(160..=260),
        301 => rng.random_range(190..=240),
        _ if nginx_generated => rng.random_range(150..=200),
        206 => rng.random_range(300..=520),
        _ => rng.random_range(200..=480) + if cacheable { 80 } else { 0 },
    };
    let bytes_sent = if status == 499 { 0 } else { body + header };

    // Timings in whole milliseconds, nginx's resolution.
    let client_bytes_per_ms = lognormal(rng, 3000.0, 0.9).max(50.0);
    let transfer = (body as f64 / client_bytes_per_ms) as u64;
    // nginx's own share of the request time.
    let local = pick(rng, &[(60, 0), (28, 1), (8, 2), (3, 3), (1, 5)]);
    let mut upstream_ms = [0u64; 2];
    let request_ms;
    if status == 499 {
        let total = lognormal(rng, 1500.0, 1.0) as u64;
        if upstreams > 0 {
            let first = if upstreams == 2 {
                rng.random_range(0..=3)
            } else {
                0
            };
            upstream_ms[0] = first;
            upstream_ms[usize::from(upstreams) - 1] =
                total.saturating_sub(first + rng.random_range(0..=2));
        }
        request_ms = total;
    } else {
        let n = usize::from(upstreams);
        for (i, up) in upstream_ms.iter_mut().enumerate().take(n) {
            let last = i + 1 == n;
            *up = match status {
                502 => rng.random_range(0..=2),
                504 => 60_000 + rng.random_range(0..=4),
                _ if !last => rng.random_range(0..=3), // a refused connection, then the next peer
                500 => lognormal(rng, 2.0 * upstream_median_ms(class), 0.7) as u64,
                _ => {
                    (lognormal(rng, upstream_median_ms(class), 0.7) + body as f64 / 30_000.0) as u64
                }
            };
        }
        request_ms = upstream_ms[..n].iter().sum::<u64>() + local + transfer;
    }

    push_referer(rng, class, dom, &mut text.referer);
    push_xff_prefix(rng, &mut text.xff_prefix);
    let remote_user = if matches!(class, Class::Page | Class::Api) && chance(rng, 0.002) {
        Some(USERS[rng.random_range(0..USERS.len())])
    } else {
        None
    };

    Request {
        domain,
        client,
        ua,
        lb,
        method,
        proto,
        status,
        body,
        bytes_sent,
        request_ms,
        upstreams,
        upstream_ms,
        cache,
        remote_user,
    }
}
