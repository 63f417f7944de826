//! Who may use the dashboard: the token printed at start, then the cookie
//! the first visit sets; `Host` and `Origin` checked against DNS rebinding
//! and cross-site requests. Pure: request parts in, a decision out.

use base64::Engine;
use std::net::SocketAddr;
use subtle::ConstantTimeEq;

/// Random bytes in a token: 192 bits, well above the 128 asked for.
const TOKEN_BYTES: usize = 24;

/// The header a page sends with its queries when the browser sends no
/// `Origin` (a cross-site page cannot set it without a CORS preflight,
/// which we never answer).
pub const CUSTOM_HEADER: &str = "X-P2P-UI";

/// The secret of one run, from the kernel's random source, base64url.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// A new random token.
    pub fn random() -> std::io::Result<Token> {
        let mut raw = zeroize::Zeroizing::new([0u8; TOKEN_BYTES]);
        crate::crypto::random_bytes(&mut raw[..])?;
        Ok(Token(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw[..]),
        ))
    }

    /// The token as it goes in the URL and the cookie.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `given` is this token, compared in constant time.
    pub fn matches(&self, given: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(given.as_bytes()))
    }
}

/// What a request carries that matters here.
#[derive(Debug, Default, Clone)]
pub struct Parts<'a> {
    pub method: &'a str,
    /// The request target: path and query string.
    pub url: &'a str,
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub cookie: Option<&'a str>,
    /// [`CUSTOM_HEADER`] is present.
    pub custom: bool,
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve it.
    Pass,
    /// The token was in the URL: set the cookie and send the browser to
    /// `location`, the same URL without the token.
    SetCookie { location: String },
    /// Refuse it with `status`, saying why.
    Refuse { status: u16, why: &'static str },
}

/// The rules of one dashboard: its token and the names it answers to.
pub struct Guard {
    token: Token,
    hosts: Vec<String>,
    cookie_name: String,
}

impl Guard {
    /// For a dashboard listening on `listen` (the port really bound).
    pub fn new(token: Token, listen: SocketAddr) -> Guard {
        let port = listen.port();
        let mut hosts = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ];
        if !listen.ip().is_unspecified() {
            let own = listen.to_string();
            if !hosts.contains(&own) {
                hosts.push(own);
            }
        }
        Guard {
            token,
            hosts,
            // Cookies are kept by host, not by port: two dashboards on one
            // host must not overwrite each other's.
            cookie_name: format!("p2p_ui_{port}"),
        }
    }

    /// The `Set-Cookie` value the first visit gets.
    pub fn cookie(&self) -> String {
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            self.cookie_name,
            self.token.as_str()
        )
    }

    /// The token, for the URL printed at start.
    pub fn token(&self) -> &Token {
        &self.token
    }

    fn host_ok(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    fn origin_ok(&self, origin: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|host| self.host_ok(host))
    }

    /// Decides on one request; `changes` when the endpoint runs a query
    /// or changes anything (it then needs POST, and an `Origin` of ours or
    /// [`CUSTOM_HEADER`]).
    pub fn check(&self, r: &Parts, changes: bool) -> Decision {
        let refuse = |status, why| Decision::Refuse { status, why };
        match r.host {
            Some(h) if self.host_ok(h) => {}
            // A name that resolves here but is not ours: DNS rebinding.
            _ => {
                return refuse(
                    421,
                    "this dashboard answers only to its own address as Host",
                );
            }
        }
        if let Some(o) = r.origin
            && !self.origin_ok(o)
        {
            return refuse(403, "cross-origin requests are refused");
        }
        let (path, query) = r.url.split_once('?').unwrap_or((r.url, ""));
        let (given, rest) = take_token(query);
        if let Some(t) = given {
            if !self.token.matches(&t) {
                return refuse(403, "wrong token: open the URL p2p-ui printed");
            }
            // A page visit drops the token from the address bar; a script
            // asking the API with ?token= just gets its answer.
            if r.method == "GET" && !changes && !path.starts_with("/api/") {
                let location = if rest.is_empty() {
                    path.to_string()
                } else {
                    format!("{path}?{rest}")
                };
                return Decision::SetCookie { location };
            }
        } else if !self.cookie_ok(r.cookie) {
            return refuse(
                403,
                "no token: open the URL p2p-ui printed (with its ?token=)",
            );
        }
        if changes {
            if r.method != "POST" {
                return refuse(405, "this endpoint takes POST");
            }
            if r.origin.is_none() && !r.custom {
                return refuse(403, "a query needs an Origin of this dashboard or X-P2P-UI");
            }
        }
        Decision::Pass
    }

    fn cookie_ok(&self, header: Option<&str>) -> bool {
        let Some(header) = header else { return false };
        header.split(';').any(|c| {
            c.trim()
                .split_once('=')
                .is_some_and(|(k, v)| k == self.cookie_name && self.token.matches(v))
        })
    }
}

/// The `token=` of a query string, and the rest of it.
fn take_token(query: &str) -> (Option<String>, String) {
    let mut token = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("token=") {
            Some(t) if token.is_none() => token = Some(t.to_string()),
            _ => rest.push(pair),
        }
    }
    (token, rest.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard::new(Token("secret".into()), "127.0.0.1:8429".parse().unwrap())
    }

    fn get<'a>(url: &'a str, cookie: Option<&'a str>) -> Parts<'a> {
        Parts {
            method: "GET",
            url,
            host: Some("127.0.0.1:8429"),
            cookie,
            ..Parts::default()
        }
    }

    #[test]
    fn tokens_are_random_long_and_url_safe() {
        let a = Token::random().unwrap();
        let b = Token::random().unwrap();
        assert_ne!(a.as_str(), b.as_str());
        assert!(a.as_str().len() * 6 >= 128);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert!(a.matches(a.as_str()));
        assert!(!a.matches(b.as_str()));
        assert!(!a.matches(""));
    }

    #[test]
    fn the_token_sets_the_cookie_and_leaves_the_url() {
        let g = guard();
        assert_eq!(
            g.check(&get("/?token=secret", None), false),
            Decision::SetCookie {
                location: "/".into()
            }
        );
        assert_eq!(
            g.check(&get("/x?a=1&token=secret&b=2", None), false),
            Decision::SetCookie {
                location: "/x?a=1&b=2".into()
            }
        );
        assert_eq!(
            g.check(&get("/api/members?token=secret", None), false),
            Decision::Pass
        );
        assert!(g.cookie().contains("HttpOnly"));
        assert!(g.cookie().contains("SameSite=Strict"));
        assert!(g.cookie().starts_with("p2p_ui_8429=secret;"));
    }

    #[test]
    fn without_token_or_cookie_nothing_is_served() {
        let g = guard();
        let refused = |d: Decision| matches!(d, Decision::Refuse { status: 403, .. });
        assert!(refused(g.check(&get("/", None), false)));
        assert!(refused(g.check(&get("/?token=wrong", None), false)));
        assert!(refused(
            g.check(&get("/", Some("p2p_ui_8429=wrong")), false)
        ));
        // Another dashboard's cookie (another port) is not ours.
        assert!(refused(g.check(&get("/", Some("p2p_ui_1=secret")), false)));
        assert_eq!(
            g.check(&get("/", Some("a=b; p2p_ui_8429=secret")), false),
            Decision::Pass
        );
    }

    #[test]
    fn only_our_own_host_names_are_answered() {
        let g = guard();
        let with_host = |h: Option<&'static str>| Parts {
            host: h,
            ..get("/", Some("p2p_ui_8429=secret"))
        };
        for ok in [
            "127.0.0.1:8429",
            "localhost:8429",
            "LOCALHOST:8429",
            "[::1]:8429",
        ] {
            assert_eq!(g.check(&with_host(Some(ok)), false), Decision::Pass, "{ok}");
        }
        for bad in [
            None,
            Some("evil.example:8429"),
            Some("127.0.0.1:80"),
            Some("localhost"),
        ] {
            assert!(
                matches!(
                    g.check(&with_host(bad), false),
                    Decision::Refuse { status: 421, .. }
                ),
                "{bad:?}"
            );
        }
        // A dashboard on another address answers to it too.
        let lan = Guard::new(Token("t".into()), "192.0.2.7:9000".parse().unwrap());
        let p = Parts {
            host: Some("192.0.2.7:9000"),
            ..get("/", Some("p2p_ui_9000=t"))
        };
        assert_eq!(lan.check(&p, false), Decision::Pass);
    }

    #[test]
    fn queries_need_post_and_our_origin_or_the_header() {
        let g = guard();
        let post = |origin, custom| Parts {
            method: "POST",
            origin,
            custom,
            ..get("/api/query", Some("p2p_ui_8429=secret"))
        };
        assert_eq!(
            g.check(&post(Some("http://127.0.0.1:8429"), false), true),
            Decision::Pass
        );
        assert_eq!(g.check(&post(None, true), true), Decision::Pass);
        assert!(matches!(
            g.check(&post(None, false), true),
            Decision::Refuse { status: 403, .. }
        ));
        for evil in ["http://evil.example", "https://127.0.0.1:8429", "null"] {
            assert!(
                matches!(
                    g.check(&post(Some(evil), true), true),
                    Decision::Refuse { status: 403, .. }
                ),
                "{evil}"
            );
        }
        let as_get = Parts {
            method: "GET",
            ..post(None, true)
        };
        assert!(matches!(
            g.check(&as_get, true),
            Decision::Refuse { status: 405, .. }
        ));
        // The token in a query's URL does not turn it into a redirect.
        let p = Parts {
            url: "/api/query?token=secret",
            cookie: None,
            ..post(None, true)
        };
        assert_eq!(g.check(&p, true), Decision::Pass);
    }
}
