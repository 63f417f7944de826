//! Who may use the dashboard: the token printed at start, which the page
//! keeps in its own tab and sends as `Authorization: Bearer` on every API
//! request; `Host` and `Origin` checked against DNS rebinding and
//! cross-site requests. No cookie: a browser keeps cookies by host, not by
//! port, so any other server on 127.0.0.1 (another user's) would be sent
//! one. Pure: request parts in, a decision out.

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

    /// The token as it goes in the URL's fragment and the header.
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
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// [`CUSTOM_HEADER`] is present.
    pub custom: bool,
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve it.
    Pass,
    /// Refuse it with `status`, saying why.
    Refuse { status: u16, why: &'static str },
}

/// The rules of one dashboard: its token and the names it answers to.
pub struct Guard {
    token: Token,
    hosts: Vec<String>,
}

impl Guard {
    /// For a dashboard listening on `listen` (the port really bound), known
    /// besides under the host names `names` (`--host`).
    pub fn new(token: Token, listen: SocketAddr, names: &[String]) -> Guard {
        let port = listen.port();
        let mut hosts = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ];
        if !listen.ip().is_unspecified() {
            hosts.push(listen.to_string());
        }
        for name in names {
            hosts.push(format!("{name}:{port}"));
            // A browser leaves out the port it would use anyway.
            if port == 80 {
                hosts.push(name.clone());
            }
        }
        hosts.dedup();
        Guard { token, hosts }
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

    fn bearer_ok(&self, header: Option<&str>) -> bool {
        header
            .and_then(|h| h.trim().strip_prefix("Bearer "))
            .is_some_and(|t| self.token.matches(t.trim()))
    }

    /// Decides on one request; `changes` when the endpoint runs a query
    /// or changes anything (it then needs POST, and an `Origin` of ours or
    /// [`CUSTOM_HEADER`]). The page's own files (anything outside `/api/`)
    /// need no token: they hold no data, and the token is in the URL's
    /// fragment, which a browser never sends.
    pub fn check(&self, r: &Parts, changes: bool) -> Decision {
        let refuse = |status, why| Decision::Refuse { status, why };
        match r.host {
            Some(h) if self.host_ok(h) => {}
            // A name that resolves here but is not ours: DNS rebinding.
            _ => {
                return refuse(
                    421,
                    "this dashboard answers only to its own address as Host (see --host)",
                );
            }
        }
        if let Some(o) = r.origin
            && !self.origin_ok(o)
        {
            return refuse(403, "cross-origin requests are refused");
        }
        let path = r.url.split('?').next().unwrap_or(r.url);
        if !path.starts_with("/api/") && !changes {
            return if r.method == "GET" {
                Decision::Pass
            } else {
                refuse(405, "the page takes GET")
            };
        }
        if !self.bearer_ok(r.authorization) {
            return refuse(
                403,
                "no token: open the URL p2p-ui printed (with its #token=), or send \
                 Authorization: Bearer TOKEN",
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard::new(
            Token("secret".into()),
            "127.0.0.1:8429".parse().unwrap(),
            &[],
        )
    }

    fn get<'a>(url: &'a str, authorization: Option<&'a str>) -> Parts<'a> {
        Parts {
            method: "GET",
            url,
            host: Some("127.0.0.1:8429"),
            authorization,
            ..Parts::default()
        }
    }

    const OURS: Option<&str> = Some("Bearer secret");

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
    fn the_page_is_served_without_the_token_and_the_api_only_with_it() {
        let g = guard();
        let refused = |d: Decision| matches!(d, Decision::Refuse { status: 403, .. });
        for page in [
            "/",
            "/index.html",
            "/app.js",
            "/style.css",
            "/?token=secret",
        ] {
            assert_eq!(g.check(&get(page, None), false), Decision::Pass, "{page}");
        }
        assert!(matches!(
            g.check(
                &Parts {
                    method: "POST",
                    ..get("/", None)
                },
                false
            ),
            Decision::Refuse { status: 405, .. }
        ));
        assert_eq!(g.check(&get("/api/members", OURS), false), Decision::Pass);
        assert!(refused(g.check(&get("/api/members", None), false)));
        // The token in the URL is no longer taken: it would sit in logs
        // and histories.
        assert!(refused(
            g.check(&get("/api/members?token=secret", None), false)
        ));
        for bad in [
            "Bearer wrong",
            "Bearer ",
            "secret",
            "Basic secret",
            "Bearer secretx",
        ] {
            assert!(
                refused(g.check(&get("/api/status", Some(bad)), false)),
                "{bad}"
            );
        }
        // Whatever a cookie says, it does not open the API.
        let with_cookie = Parts {
            url: "/api/members",
            ..get("/api/members", Some("p2p_ui_8429=secret"))
        };
        assert!(refused(g.check(&with_cookie, false)));
    }

    #[test]
    fn only_our_own_host_names_are_answered() {
        let g = guard();
        let with_host = |h: Option<&'static str>| Parts {
            host: h,
            ..get("/api/members", OURS)
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
        // Not even the page is served under a foreign name.
        assert!(matches!(
            g.check(
                &Parts {
                    host: Some("evil.example:8429"),
                    ..get("/", None)
                },
                false
            ),
            Decision::Refuse { status: 421, .. }
        ));
        // A dashboard on another address answers to it too.
        let lan = Guard::new(Token("t".into()), "192.0.2.7:9000".parse().unwrap(), &[]);
        let p = Parts {
            host: Some("192.0.2.7:9000"),
            ..get("/api/members", Some("Bearer t"))
        };
        assert_eq!(lan.check(&p, false), Decision::Pass);
        // On every address, it answers to the names --host gives.
        let any = Guard::new(
            Token("t".into()),
            "0.0.0.0:9000".parse().unwrap(),
            &["ops.example".into(), "[2001:db8::7]".into()],
        );
        for host in ["ops.example:9000", "[2001:db8::7]:9000", "127.0.0.1:9000"] {
            let p = Parts {
                host: Some(host),
                ..get("/api/members", Some("Bearer t"))
            };
            assert_eq!(any.check(&p, false), Decision::Pass, "{host}");
        }
        let p = Parts {
            host: Some("0.0.0.0:9000"),
            ..get("/api/members", Some("Bearer t"))
        };
        assert!(matches!(
            any.check(&p, false),
            Decision::Refuse { status: 421, .. }
        ));
    }

    #[test]
    fn queries_need_post_and_our_origin_or_the_header() {
        let g = guard();
        let post = |origin, custom| Parts {
            method: "POST",
            origin,
            custom,
            ..get("/api/query", OURS)
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
        let no_token = Parts {
            authorization: None,
            ..post(None, true)
        };
        assert!(matches!(
            g.check(&no_token, true),
            Decision::Refuse { status: 403, .. }
        ));
    }
}
