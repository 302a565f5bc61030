//! A small W3C WebDriver client over ureq, enough to drive headless Chromium through
//! chromedriver: new session, navigate, find elements by CSS, run a script, size the window,
//! screenshot, delete session.

use serde_json::{Value, json};
use std::time::Duration;

pub struct Session {
    base: String,
    id: String,
    agent: ureq::Agent,
}

fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<Value>) -> Value {
    let result = match (method, body) {
        ("POST", Some(b)) => agent.post(url).send_json(b),
        ("DELETE", _) => agent.delete(url).call(),
        _ => agent.get(url).call(),
    };
    let mut response = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let doc: Value = response
        .body_mut()
        .read_json()
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    assert!(status < 400, "{method} {url}: {status} {doc}");
    doc["value"].clone()
}

/// Standard base64 (the screenshot encoding), without a dependency.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, d)| acc | d << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

impl Session {
    /// A headless Chromium session on the chromedriver at `base`.
    pub fn new(base: &str, chromium: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1800"
            ]}
        }}});
        let value = call(&agent, "POST", &format!("{base}/session"), Some(caps));
        let id = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id: {value}"))
            .to_string();
        Self {
            base: base.to_string(),
            id,
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.id)
    }

    pub fn navigate(&self, url: &str) {
        call(
            &self.agent,
            "POST",
            &self.url("/url"),
            Some(json!({ "url": url })),
        );
    }

    pub fn title(&self) -> String {
        call(&self.agent, "GET", &self.url("/title"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// How many elements match `css`.
    pub fn count(&self, css: &str) -> usize {
        let value = call(
            &self.agent,
            "POST",
            &self.url("/elements"),
            Some(json!({ "using": "css selector", "value": css })),
        );
        value.as_array().map_or(0, Vec::len)
    }

    /// Runs `script` in the page (a function body: `return ...`) and returns its value.
    pub fn script(&self, script: &str) -> Value {
        call(
            &self.agent,
            "POST",
            &self.url("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Makes the window as tall as the page (at most `max_px`), so a screenshot of the
    /// viewport is one of the whole page.
    pub fn fit_window_to_page(&self, max_px: u64) {
        let resize = |height: u64| {
            call(
                &self.agent,
                "POST",
                &self.url("/window/rect"),
                Some(json!({ "width": 1280, "height": height })),
            );
        };
        // Short first, so that the page's height is its content's, not the window's.
        resize(400);
        let size = self.script(
            "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight];",
        );
        let content = size[0].as_u64().unwrap_or(1800);
        let chrome = size[1].as_u64().unwrap_or(0);
        resize((content + chrome).clamp(400, max_px));
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let value = call(&self.agent, "GET", &self.url("/screenshot"), None);
        base64_decode(value.as_str().unwrap_or_default())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.url("")).call();
    }
}

#[test]
fn base64_decodes_padding_and_full_blocks() {
    assert_eq!(base64_decode("TWFu"), b"Man");
    assert_eq!(base64_decode("TWE="), b"Ma");
    assert_eq!(base64_decode("TQ=="), b"M");
    assert_eq!(
        base64_decode("iVBORw0KGgo="),
        [0x89, b'P', b'N', b'G', 13, 10, 26, 10]
    );
}
