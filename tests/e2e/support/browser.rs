//! A real headless Chromium driven over WebDriver (chromedriver + fantoccini), for tests that
//! look at the page as a person would. Everything it starts dies with it.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use super::leftovers::live_processes;
use super::{dies_with_its_starter, which, TempDir};

/// One browser at a time in the test process: Chromium is heavy and the machine has two shared
/// cores, so parallel browsers would only make every test slower and its timing noisier.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Flags that make Chromium work here as root and keep it off the (closed) network.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=720,640",
];

pub struct Browser {
    // Field order is drop order: the session goes before chromedriver and its Chromium.
    client: Option<Client>,
    rt: Runtime,
    driver: Child,
    /// Removed after Drop has ended every process that uses it.
    profile: TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl Browser {
    /// Starts chromedriver on a port the kernel picks, and a Chromium session with a fresh
    /// profile. Panics with what to install when a program is missing.
    pub fn start() -> Browser {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let chromium = which("chromium")
            .expect("chromium is not installed: `apt-get install -y chromium chromium-driver`");
        let chromedriver = which("chromedriver")
            .expect("chromedriver is not installed: `apt-get install -y chromium-driver`");
        let profile = TempDir::new("chromium");
        // Its own process group, so that Drop can end chromedriver and every Chromium process
        // it started, even if the session could not be closed. Chromium's crash handlers
        // leave the group; XDG_CONFIG_HOME puts their database (named on their command line)
        // in the profile, which is how Drop finds them, and keeps them out of ~/.config.
        // Retried: under load, chromedriver has been seen to exit before it said its port.
        let (driver, port) = (1..=3)
            .find_map(|attempt| {
                let mut driver = dies_with_its_starter(&mut Command::new(&chromedriver))
                    .arg("--port=0")
                    .env("XDG_CONFIG_HOME", profile.join("config"))
                    .env("XDG_CACHE_HOME", profile.join("cache"))
                    .process_group(0)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start chromedriver");
                match read_port(&mut driver) {
                    Ok(port) => Some((driver, port)),
                    Err(e) => {
                        eprintln!("chromedriver attempt {attempt}: {e}");
                        None
                    }
                }
            })
            .expect("chromedriver did not start in 3 attempts (their output is above)");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let caps = caps.as_object().unwrap().clone();
        let mut browser = Browser {
            client: None,
            rt,
            driver,
            profile,
            _turn: turn,
        };
        let client = browser.block_on(
            ClientBuilder::new(HttpConnector::new())
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}")),
        );
        browser.client = Some(client.expect("a Chromium session from chromedriver"));
        browser
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(60), f).await })
            .expect("chromedriver answered within 60 s")
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub fn goto(&self, url: &str) {
        self.block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Runs a script's body (`return …;`) in the page and gives its value.
    pub fn eval(&self, script: &str) -> Value {
        self.block_on(self.client().execute(script, vec![]))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Types `keys` into the element `css` selects, as a person would (key events, `input`
    /// events; `fantoccini::key::Key::Enter` submits a form).
    pub fn type_into(&self, css: &str, keys: &str) {
        let element = self.find(css);
        self.block_on(element.send_keys(keys))
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Clicks the element `css` selects.
    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.block_on(element.click())
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Empties the input or textarea `css` selects.
    pub fn clear(&self, css: &str) {
        let element = self.find(css);
        self.block_on(element.clear())
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
    }

    fn find(&self, css: &str) -> Element {
        self.block_on(self.client().find(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
    }

    /// A Chrome DevTools Protocol command, through chromedriver's `goog/cdp/execute`.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        let command = CdpCommand {
            cmd: cmd.to_string(),
            params,
        };
        self.block_on(self.client().issue_cmd(command))
            .unwrap_or_else(|e| panic!("CDP {cmd}: {e}"))
    }

    /// Saves a PNG of the viewport.
    pub fn screenshot(&self, path: &Path) {
        let png = self
            .block_on(self.client().screenshot())
            .expect("screenshot");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Closing the session makes chromedriver quit Chromium cleanly; bounded, because
            // Drop may run while a failed test unwinds.
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
        // SAFETY: kill(2) on the process group we created for chromedriver (its pid).
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGKILL);
        }
        let _ = self.driver.wait();
        // The crash handlers end by themselves once Chromium is gone; these are stragglers.
        for (pid, _) in self.leftovers() {
            // SAFETY: kill(2) on a process whose command line names our own profile.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// chromedriver prints "ChromeDriver was started successfully on port N." once listening;
/// otherwise the error says what it printed and how it ended.
fn read_port(driver: &mut Child) -> Result<u16, String> {
    let stdout = driver.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keep reading to the end so that chromedriver never blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let end = Instant::now() + Duration::from_secs(30);
    let mut said = Vec::new();
    loop {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let port = line.split("successfully on port ").nth(1);
                if let Some(port) = port.and_then(|p| p.trim_end_matches('.').parse().ok()) {
                    return Ok(port);
                }
                said.push(line);
            }
            Err(e) => {
                let _ = driver.kill();
                let status = driver.wait();
                return Err(format!(
                    "chromedriver did not say its port ({e:?}; {status:?}); it said {said:?}"
                ));
            }
        }
    }
}

#[derive(Debug)]
struct CdpCommand {
    cmd: String,
    params: Value,
}

impl WebDriverCompatibleCommand for CdpCommand {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or("")
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

impl Browser {
    /// The live processes this browser started: chromedriver's process group, and those whose
    /// command line names the profile (Chromium's crash handlers), as (pid, name).
    pub fn processes(&self) -> Vec<(i32, String)> {
        self.process_finder()()
    }

    /// The same list, callable after the browser is dropped: what of it is still alive.
    pub fn process_finder(&self) -> impl Fn() -> Vec<(i32, String)> {
        let group = self.driver.id() as i32;
        let profile = self.profile.to_path_buf();
        move || {
            let mut all = group_members(group);
            all.extend(naming(&profile));
            all.sort();
            all.dedup();
            all
        }
    }

    fn leftovers(&self) -> Vec<(i32, String)> {
        naming(&self.profile)
    }
}

/// Live processes whose command line contains `path`, outside any group we made.
fn naming(path: &Path) -> Vec<(i32, String)> {
    let needle = path.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    for (pid, name, _) in live_processes() {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            found.push((pid, name));
        }
    }
    found
}

/// The live processes in process group `pgid`, as (pid, command name).
fn group_members(pgid: i32) -> Vec<(i32, String)> {
    live_processes()
        .into_iter()
        .filter(|(_, _, group)| *group == pgid)
        .map(|(pid, name, _)| (pid, name))
        .collect()
}
