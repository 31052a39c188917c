//! The web console as a browser sees it: a cookie jar over reqwest that
//! follows no redirects, and pages read whole.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use super::TestServer;

/// A response, read whole.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token the page's forms carry.
    pub fn csrf(&self) -> String {
        capture(&self.body, r#"name="csrf" value="([^"]+)""#)
            .into_iter()
            .next()
            .expect("a form with a CSRF token")
    }

    /// The number in `data-bytes` of the first element with `class`.
    pub fn bytes(&self, class: &str) -> Option<u64> {
        capture(
            &self.body,
            &format!(r#"class="{class}" data-bytes="([0-9]+)""#),
        )
        .first()
        .map(|b| b.parse().expect("a number"))
    }

    /// The part of the page from the element with `id` on.
    pub fn from(&self, id: &str) -> &str {
        let at = self
            .body
            .find(&format!(r#"id="{id}""#))
            .unwrap_or_else(|| panic!("no #{id} in {}", self.body));
        &self.body[at..]
    }
}

/// The first group of every match of `pattern`, HTML entities of `&` undone.
pub fn capture(text: &str, pattern: &str) -> Vec<String> {
    regex_lite::Regex::new(pattern)
        .expect("a valid pattern")
        .captures_iter(text)
        .map(|c| c[1].replace("&amp;", "&"))
        .collect()
}

/// A browser, as far as the console can tell: a cookie jar, no redirects followed.
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(server: &TestServer) -> Browser {
        Browser::at(server.url(""))
    }

    /// A browser of the server at `base` (`http://host:port`).
    pub fn at(base: String) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            base,
            cookies: BTreeMap::new(),
        }
    }

    /// The `Cookie` header this browser sends.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn with_cookies(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.cookies.is_empty() {
            return request;
        }
        request.header("cookie", self.cookie_header())
    }

    pub async fn read(&mut self, request: reqwest::RequestBuilder) -> Page {
        let response = self.with_cookies(request).send().await.expect("a response");
        for value in response.headers().get_all(SET_COOKIE) {
            let value = value.to_str().expect("a text cookie");
            let (pair, attributes) = value.split_once(';').unwrap_or((value, ""));
            let (name, v) = pair.split_once('=').expect("name=value");
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), v.into());
            }
        }
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.expect("a body"),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.read(request).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.read(request).await
    }

    /// Posts `form` with the CSRF token of the page at `from`.
    pub async fn submit(&mut self, from: &str, to: &str, form: &[(&str, &str)]) -> Page {
        let csrf = self.get(from).await.csrf();
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(to, &fields).await
    }

    /// Opens a response without reading its body (a log stream).
    pub async fn stream(&self, path: &str) -> reqwest::Response {
        let request = self.http.get(format!("{}{path}", self.base));
        self.with_cookies(request).send().await.expect("a response")
    }

    /// The CSRF secret of this browser's forms (from its cookie, set by any
    /// console page).
    pub async fn csrf(&mut self) -> String {
        self.get("/ui/login").await;
        self.cookies
            .get("wharf_csrf")
            .cloned()
            .expect("a CSRF cookie")
    }

    /// Posts the sign-in form; the answer, whatever it is.
    pub async fn try_sign_in(&mut self, (user, password): (&str, &str)) -> Page {
        let csrf = self.get("/ui/login").await.csrf();
        self.post(
            "/ui/login",
            &[
                ("csrf", &csrf),
                ("username", user),
                ("password", password),
                ("next", "/ui/"),
            ],
        )
        .await
    }

    /// Signs in through the form; asserts it worked.
    pub async fn sign_in(&mut self, user: (&str, &str)) {
        let done = self.try_sign_in(user).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        assert_eq!(done.location(), "/ui/");
    }
}
