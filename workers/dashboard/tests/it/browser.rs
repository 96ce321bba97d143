//! A real browser for the suites: Debian's headless Chromium
//! (`scripts/ensure-chromium.sh` installs it), started through the testkit's
//! process helper (its own process group, stopped with it, and by the
//! watchdog if the test process dies) and driven over the DevTools protocol
//! by `headless_chrome`. [`BrowserPage`] is what a flow uses: open a path,
//! sign in and out, read and await text, click, screenshot. Every wait
//! polls a condition up to a bound; nothing sleeps a fixed time.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, Tab};

use crate::support::*;

/// A bound for a broken page on a busy machine, not a wait.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(60);
const READY: &str = "DevTools listening on ";

/// Headless Chromium on loopback, with a profile of its own.
pub struct Chromium {
    // Dropped before the process: the connection closes, then the group is stopped.
    browser: Browser,
    _process: Process,
}

impl Chromium {
    pub fn start() -> Self {
        let binary = ["/usr/bin/chromium", "/usr/local/bin/chromium"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("no chromium: run `bash scripts/ensure-chromium.sh` (npm test does)");
        let dir = TempDir::new("chromium").keep();
        let log = dir.join("chromium.log");
        let mut command = Command::new(binary);
        command
            .arg("--headless")
            // Root (CI) cannot start Chromium's sandbox; the pages are our own, on loopback.
            .arg("--no-sandbox")
            .args(["--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
            .args(["--no-default-browser-check", "--disable-extensions"])
            .args([
                "--disable-background-networking",
                "--disable-component-update",
            ])
            .args([
                "--disable-sync",
                "--password-store=basic",
                "--hide-scrollbars",
            ])
            .args([
                "--window-size=1200,1100",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .arg("about:blank");
        let mut process = Process::spawn("chromium", command, &log, Some(&dir));
        let mut ws_url = String::new();
        process.wait_ready(PAGE_TIMEOUT, || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            ws_url = text
                .lines()
                .find_map(|l| l.strip_prefix(READY))
                .unwrap_or_default()
                .trim()
                .to_owned();
            !ws_url.is_empty()
        });
        // The connection is dropped after this long without a protocol event.
        let browser = Browser::connect_with_timeout(ws_url, Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("connect to chromium: {e}\n{}", process.logs()));
        Chromium {
            browser,
            _process: process,
        }
    }

    /// A new tab on the dashboard at `base_url`; its screenshots are named
    /// `{flow}-NN-{step}.png` in `target/screenshots/`.
    pub fn page(&self, base_url: &str, flow: &str) -> BrowserPage {
        let tab = self.browser.new_tab().expect("a new tab");
        tab.set_default_timeout(PAGE_TIMEOUT);
        BrowserPage {
            tab,
            base_url: base_url.trim_end_matches('/').to_owned(),
            flow: flow.to_owned(),
            shots: 0,
        }
    }
}

/// Where the suites write their screenshots (test output).
pub fn screenshot_dir() -> PathBuf {
    repo_root().join("target/screenshots")
}

/// One tab on the dashboard.
pub struct BrowserPage {
    pub tab: Arc<Tab>,
    base_url: String,
    flow: String,
    shots: u32,
}

impl BrowserPage {
    /// Navigates to `path` on the dashboard and waits for the load to finish
    /// (after any redirect).
    pub fn open(&self, path: &str) {
        let url = format!("{}{path}", self.base_url);
        self.tab
            .navigate_to(&url)
            .and_then(|t| t.wait_until_navigated())
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
        self.wait_loaded();
    }

    /// Evaluates `expression` in the page: its JSON value (`Null` for
    /// `undefined`), or `None` while the page cannot answer (navigating).
    pub fn eval(&self, expression: &str) -> Option<Json> {
        let object = self.tab.evaluate(expression, false).ok()?;
        Some(object.value.unwrap_or(Json::Null))
    }

    /// Waits until `expression` is `true` in the page; panics with `what`,
    /// the URL and a screenshot after [`PAGE_TIMEOUT`].
    pub fn wait_for(&self, what: &str, expression: &str) {
        let ok = wait_until(PAGE_TIMEOUT, || {
            self.eval(expression) == Some(Json::Bool(true))
        });
        if !ok {
            let shot = self.save_png("timeout");
            panic!(
                "timed out waiting for {what} on {} (screenshot {}); the page says: {}",
                self.tab.get_url(),
                shot.display(),
                self.text_of("body").unwrap_or_default()
            );
        }
    }

    fn wait_loaded(&self) {
        self.wait_for("the page to load", "document.readyState === 'complete'");
    }

    /// Waits until the page at `path` has loaded (after a form post or a redirect).
    pub fn wait_for_path(&self, path: &str) {
        self.wait_for(
            &format!("the path {path}"),
            &format!(
                "location.pathname === {} && document.readyState === 'complete'",
                js(path)
            ),
        );
    }

    /// The path of the page shown.
    pub fn path(&self) -> String {
        let value = self.eval("location.pathname").unwrap_or_default();
        value.as_str().unwrap_or_default().to_owned()
    }

    /// The text the first element matching `selector` shows (`innerText`), if there is one.
    pub fn text_of(&self, selector: &str) -> Option<String> {
        let expression = format!(
            "(() => {{ const e = document.querySelector({}); return e ? e.innerText : null }})()",
            js(selector)
        );
        self.eval(&expression)?.as_str().map(str::to_owned)
    }

    /// Waits until the element matching `selector` shows `text` (as text: a
    /// substring of its `innerText`).
    pub fn wait_for_text(&self, selector: &str, text: &str) {
        self.wait_for(
            &format!("{text:?} in {selector}"),
            &format!(
                "(() => {{ const e = document.querySelector({}); return !!e && e.innerText.includes({}) }})()",
                js(selector),
                js(text)
            ),
        );
    }

    /// The number shown in `selector` (a count cell).
    pub fn number_of(&self, selector: &str) -> u64 {
        let text = self.text_of(selector);
        text.as_deref()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("{selector}: no number in {text:?}"))
    }

    /// Types `text` into the field matching `selector`.
    pub fn fill(&self, selector: &str, text: &str) {
        let field = self
            .tab
            .wait_for_element(selector)
            .unwrap_or_else(|e| panic!("{selector}: {e}"));
        field
            .click()
            .and_then(|f| f.type_into(text))
            .unwrap_or_else(|e| panic!("type into {selector}: {e}"));
    }

    /// Clicks the element matching `selector`, as a user would.
    pub fn click(&self, selector: &str) {
        self.tab
            .wait_for_element(selector)
            .and_then(|e| e.click().map(|_| ()))
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    /// Submits the sign-in form with `password` (from the sign-in page). The
    /// caller awaits the outcome: the overview, or the refusal.
    pub fn submit_password(&self, password: &str) {
        self.fill("input[name=password]", password);
        self.click("form[action='/login'] button[type=submit]");
    }

    /// Signs in with `password` from wherever the page is, and waits for the overview.
    pub fn sign_in(&self, password: &str) {
        if self.path() != "/login" {
            self.open("/login");
        }
        self.submit_password(password);
        self.wait_for_path("/");
        self.wait_for_text("h1", "Overview");
    }

    /// Clicks "Sign out" in the header and waits for the sign-in form.
    pub fn sign_out(&self) {
        self.click("form[action='/logout'] button[type=submit]");
        self.wait_for_path("/login");
        self.wait_for_text("h1", "Sign in");
    }

    /// Saves a PNG of the viewport as `target/screenshots/{flow}-NN-{step}.png`
    /// (numbered in the order taken); its path.
    pub fn screenshot(&mut self, step: &str) -> PathBuf {
        self.shots += 1;
        self.save_png(&format!("{:02}-{step}", self.shots))
    }

    fn save_png(&self, name: &str) -> PathBuf {
        let png = self
            .tab
            .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}-{name}.png", self.flow));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Asserts that no `<script>` a user's data carried ran or became an
    /// element: `window.{flag}` is unset and no script element mentions it.
    pub fn assert_no_script_ran(&self, flag: &str) {
        let set = self.eval(&format!("typeof window[{}]", js(flag)));
        assert_eq!(
            set,
            Some(Json::String("undefined".into())),
            "window.{flag} was set on {}",
            self.path()
        );
        let injected = self.eval(&format!(
            "[...document.scripts].some(s => s.textContent.includes({}))",
            js(flag)
        ));
        assert_eq!(
            injected,
            Some(Json::Bool(false)),
            "a script element with {flag} on {}",
            self.path()
        );
    }
}

/// `s` as a JavaScript string literal.
fn js(s: &str) -> String {
    Json::String(s.to_owned()).to_string()
}
