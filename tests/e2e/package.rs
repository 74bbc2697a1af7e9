//! The Debian package, installed on this machine (`.ci/run` builds it with `cargo deb`,
//! installs it with `dpkg -i`, runs these tests, then purges it):
//! - what its postinst made: the user tickerd, the publish token (root:tickerd 0640);
//! - the packaged units run as systemd would run them, without systemd: the test makes the
//!   sockets the socket units describe (the SCGI socket at its real path, /run/tickerd,
//!   root:www-data 0660; the HTTP one on a free loopback port instead of 8080), and starts
//!   the service's ExecStart as its User= with them in LISTEN_FDS, the environment file
//!   read, a NOTIFY_SOCKET and a watchdog. Then Debian's lighttpd with the packaged snippet,
//!   and nginx and Apache with the packaged examples, serve the page, streams and publishes;
//!   the binary is replaced as dpkg replaces it and ExecReload (the live upgrade) keeps
//!   every stream; SIGTERM stops it, leaving the socket file to systemd;
//! - the maintainer scripts, with systemctl and the deb-systemd helpers stubbed in a mount
//!   namespace that pretends systemd runs: an upgrade reloads tickerd.service and nothing
//!   ever restarts or stops a socket, except a removal.
//!
//! They need root and the package installed, so they are ignored in a plain `cargo test`:
//! `cargo test --test e2e -- --ignored package::` (after `dpkg -i`).

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::fronts::{apache, lighttpd, nginx, Front};
use crate::support::*;

const UNITS: &str = "/usr/lib/systemd/system";
/// Descriptors passed to the service, at most.
const MAX_FDS: usize = 4;
const WHY: &str = "needs root and the Debian package installed: .ci/run";

// --- what the package installed -------------------------------------------------------

#[test]
#[ignore = "needs root and the Debian package installed: .ci/run"]
fn the_package_made_its_user_token_and_files() {
    assert_installed();
    let version = run("/usr/bin/tickerd", &["--version"]);
    assert!(version.starts_with("tickerd "), "{version}");

    // The user and group tickerd: a system user with no login.
    let passwd = run("getent", &["passwd", "tickerd"]);
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_eq!(fields[6], "/usr/sbin/nologin", "{passwd}");
    assert!(
        fields[2].parse::<u32>().unwrap() < 1000,
        "a system uid: {passwd}"
    );
    let gid = group_id("tickerd");
    assert_eq!(fields[3].parse::<u32>().unwrap(), gid, "{passwd}");

    // The token: random, root:tickerd 0640, in a directory anyone may traverse.
    let token = Path::new("/etc/tickerd/publish-token");
    let meta = std::fs::metadata(token).expect("the postinst made the token");
    assert_eq!((meta.uid(), meta.gid()), (0, gid));
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    let text = std::fs::read_to_string(token).unwrap();
    let t = text.trim_end_matches('\n');
    assert!(
        t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()),
        "32 random bytes in hex"
    );

    // Conffiles: the environment file and the lighttpd snippet.
    let conffiles = run("dpkg-query", &["-W", "-f=${Conffiles}", "tickerd"]);
    for f in [
        "/etc/default/tickerd",
        "/etc/lighttpd/conf-available/20-tickerd.conf",
    ] {
        assert!(conffiles.contains(f), "{f} not a conffile: {conffiles}");
    }
    // The units are enabled the way deb-systemd-helper does it.
    for (link, unit) in [
        ("sockets.target.wants", "tickerd.socket"),
        ("sockets.target.wants", "tickerd-http.socket"),
        ("multi-user.target.wants", "tickerd.service"),
    ] {
        let path = Path::new("/etc/systemd/system").join(link).join(unit);
        assert!(path.is_symlink(), "{} missing", path.display());
    }

    // `lighty-enable-mod tickerd` finds the snippet, and Debian's own lighttpd.conf accepts
    // it (lighttpd -tt loads the modules too), as lighttpd.service's ExecStartPre checks it.
    let enabled = Path::new("/etc/lighttpd/conf-enabled/20-tickerd.conf");
    let _disable = (!enabled.exists()).then(|| Disable(enabled.to_path_buf()));
    let out = Command::new("lighty-enable-mod")
        .arg("tickerd")
        .output()
        .expect("lighty-enable-mod");
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(enabled.is_symlink(), "lighty-enable-mod tickerd: {said}");
    let lighttpd = which("lighttpd").expect("lighttpd is installed by .ci/run");
    let out = Command::new(lighttpd)
        .args(["-tt", "-f", "/etc/lighttpd/lighttpd.conf"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "Debian's lighttpd.conf with the snippet enabled: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Undoes `lighty-enable-mod tickerd` (only when the test did it).
struct Disable(PathBuf);

impl Drop for Disable {
    fn drop(&mut self) {
        let _ = Command::new("lighty-disable-mod").arg("tickerd").output();
        let _ = std::fs::remove_file(&self.0);
    }
}

// --- the units, run as systemd runs them ---------------------------------------------

#[test]
#[ignore = "needs root and the Debian package installed: .ci/run"]
fn the_units_serve_through_the_packaged_front_end_configs_and_reload_in_place() {
    assert_installed();
    let token = std::fs::read_to_string("/etc/tickerd/publish-token").unwrap();
    let token = token.trim().to_string();
    let service = Unit::read("tickerd.service");
    assert_eq!(service.one("Service", "Type"), "notify");
    assert_eq!(service.one("Service", "User"), "tickerd");
    assert!(
        service.all("Service", "RuntimeDirectory").is_empty(),
        "it would delete /run/tickerd and the socket when the service stops"
    );

    // The sockets, as the socket units describe them: SCGI at its real path (the lighttpd
    // snippet names it), HTTP on a free port (8080 may be taken here).
    let scgi_unit = Unit::read("tickerd.socket");
    let http_unit = Unit::read("tickerd-http.socket");
    for unit in [&scgi_unit, &http_unit] {
        assert_eq!(unit.one("Socket", "Service"), "tickerd.service");
    }
    let scgi = HeldUnixSocket::like(&scgi_unit);
    let http_listen = http_unit.one("Socket", "ListenStream");
    assert_eq!(http_listen, "127.0.0.1:8080");
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let http_addr = http.local_addr().unwrap();

    // Only www-data (the web servers' workers) may connect to the SCGI socket.
    assert!(
        can_connect_as("www-data", &scgi.path),
        "www-data must reach the SCGI socket"
    );
    assert!(
        !can_connect_as("nobody", &scgi.path),
        "nobody else may reach the SCGI socket"
    );

    // systemd passes the descriptors in no particular order: the names tell them apart.
    let fds = [
        (
            http.as_raw_fd(),
            http_unit.one("Socket", "FileDescriptorName"),
        ),
        (
            scgi.listener.as_raw_fd(),
            scgi_unit.one("Socket", "FileDescriptorName"),
        ),
    ];
    let dir = TempDir::new("package");
    let notify = Notifications::listen(&dir.join("notify"));
    let mut t = Service::start(&service, &fds, &notify.path);
    notify.wait_for("READY=1", Duration::from_secs(10), &t);
    notify.wait_for("WATCHDOG=1", Duration::from_secs(5), &t);
    // (stderr is read by a thread of its own: it may lag behind the notifications.)
    assert!(
        wait_until(Duration::from_secs(5), || t
            .log()
            .contains("inherited from systemd")),
        "listeners from LISTEN_FDS: {}",
        t.log()
    );

    // tickerd's own HTTP listener, from tickerd-http.socket.
    let page = get(http_addr, "/");
    assert_eq!(page.status, 200, "{}", page.head);

    // The three front-ends, each from the package's file, each left with a stream open.
    let fronts = [
        lighttpd::with_the_packaged_snippet(),
        nginx::with_the_packaged_example(),
        apache::with_the_packaged_example(),
    ];
    let mut streams = Vec::new();
    for (n, front) in fronts.iter().enumerate() {
        let price = format!("{}.25", n + 1);
        streams.push(serves(front, &token, &price));
    }

    // The live upgrade: the binary replaced as dpkg replaces it (a new file renamed over the
    // old one), then ExecReload. Same process, every stream goes on.
    let pid = t.pid();
    replace_like_dpkg(Path::new("/usr/bin/tickerd"));
    let mark = notify.len();
    let reload = service.one("Service", "ExecReload");
    let words: Vec<String> = reload
        .split_whitespace()
        .map(|w| w.replace("$MAINPID", &pid.to_string()))
        .collect();
    let status = Command::new(&words[0]).args(&words[1..]).status().unwrap();
    assert!(status.success(), "{reload}");
    notify.wait_for_after(mark, "RELOADING=1", Duration::from_secs(15), &t);
    notify.wait_for_after(mark, "READY=1", Duration::from_secs(15), &t);
    assert!(t.running(), "the same process serves on: {}", t.log());
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(
        exe,
        Path::new("/usr/bin/tickerd"),
        "runs the new file, not the replaced one"
    );
    let mark = notify.len();
    notify.wait_for_after(mark, "WATCHDOG=1", Duration::from_secs(5), &t);
    // A publish after the upgrade reaches the streams opened before it, through all three.
    let id = publish(fronts[0].addr, &token, "MSFT=9.75");
    for (front, stream) in fronts.iter().zip(streams.iter_mut()) {
        let e = event_with_id(stream, id, front.name);
        assert!(e.data.contains("\"9.75\""), "{}: {e:?}", front.name);
    }

    // SIGTERM (systemd's KillSignal): STOPPING=1, exit 0, the socket file left to systemd.
    drop(streams);
    let mark = notify.len();
    t.signal(libc::SIGTERM);
    notify.wait_for_after(mark, "STOPPING=1", Duration::from_secs(5), &t);
    let status = t.wait(Duration::from_secs(10)).expect("stopped in time");
    assert!(status.success(), "{status:?}: {}", t.log());
    assert!(
        scgi.path.exists(),
        "tickerd must never unlink the socket systemd made"
    );
}

/// A page, a redirect, a stream of MSFT and a publish through `front`, under /prices;
/// returns the stream, still open.
fn serves(front: &Front, token: &str, price: &str) -> SseReader<TcpStream> {
    let name = front.name;
    let r = get(front.addr, "/prices");
    assert_eq!(r.status, 301, "{name}: {}", r.head);
    assert!(
        r.header("Location")
            .is_some_and(|l| l.ends_with("/prices/")),
        "{name}: {}",
        r.head
    );
    let r = get(front.addr, "/prices/");
    assert_eq!(r.status, 200, "{name}: {}", r.head);
    assert!(
        r.header("Content-Type")
            .is_some_and(|v| v.starts_with("text/html")),
        "{name}: {}",
        r.head
    );
    let mut s = http_stream(front.addr, "/prices/ticker?symbols=MSFT", &[]);
    assert_eq!(s.status, 200, "{name}: {}", s.head);
    assert_eq!(
        header(&s.head, "Content-Type").as_deref(),
        Some("text/event-stream"),
        "{name}: {}",
        s.head
    );
    s.next_event()
        .unwrap_or_else(|| panic!("{name}: MSFT's current price"));
    // The random walk (the default --tick-ms 1000) moves MSFT every second; the publish's
    // own event is told by its id.
    let id = publish(front.addr, token, &format!("MSFT={price}"));
    let e = event_with_id(&mut s, id, name);
    assert!(e.data.contains(&format!("\"{price}\"")), "{name}: {e:?}");
    s
}

/// POST /prices/publish with the packaged token; the id of the update.
fn publish(front: SocketAddr, token: &str, body: &str) -> u64 {
    let r: Response = request(
        front,
        "POST",
        "/prices/publish",
        &format!("Authorization: Bearer {token}\r\n"),
        body,
    );
    assert_eq!(r.status, 200, "{}{}", r.head, r.body);
    r.body.lines().next().unwrap().parse().unwrap()
}

/// Reads `s` until the event `id` (the walk's events before it are skipped).
fn event_with_id(s: &mut SseReader<TcpStream>, id: u64, name: &str) -> SseEvent {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let e = s
            .next_event()
            .unwrap_or_else(|| panic!("{name}: the stream ended or stalled before id {id}"));
        if e.id() == id {
            return e;
        }
        assert!(e.id() < id, "{name}: id {id} skipped: {e:?}");
    }
    panic!("{name}: no event {id} in 10 s");
}

/// Copies `path` to `path.dpkg-new` and renames it over `path`: a new inode, as dpkg
/// installs a new version (the running process's old file is gone).
fn replace_like_dpkg(path: &Path) {
    let new = path.with_extension("dpkg-new");
    std::fs::copy(path, &new).unwrap();
    std::fs::rename(&new, path).unwrap();
}

// --- systemd's part, played by the test ------------------------------------------------

/// A unit file: (section, key) → values in order.
struct Unit {
    name: String,
    keys: HashMap<(String, String), Vec<String>>,
}

impl Unit {
    fn read(name: &str) -> Unit {
        let path = Path::new(UNITS).join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} ({WHY})", path.display()));
        let mut keys: HashMap<(String, String), Vec<String>> = HashMap::new();
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s.to_string();
                continue;
            }
            assert!(
                !line.ends_with('\\'),
                "{name}: continued lines are not read here"
            );
            let (k, v) = line.split_once('=').expect("key=value");
            keys.entry((section.clone(), k.trim().to_string()))
                .or_default()
                .push(v.trim().to_string());
        }
        Unit {
            name: name.to_string(),
            keys,
        }
    }

    fn all(&self, section: &str, key: &str) -> Vec<String> {
        self.keys
            .get(&(section.to_string(), key.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    fn one(&self, section: &str, key: &str) -> String {
        match self.all(section, key).as_slice() {
            [one] => one.clone(),
            other => panic!("{}: [{section}] {key}: {other:?}", self.name),
        }
    }

    fn get(&self, section: &str, key: &str) -> Option<String> {
        self.all(section, key).pop()
    }
}

/// The SCGI socket at the path the socket unit gives, with its owner and mode, removed
/// (with its directory, if the test made it) when dropped. systemd would leave both.
struct HeldUnixSocket {
    listener: UnixListener,
    path: PathBuf,
    made_dir: bool,
}

impl HeldUnixSocket {
    fn like(unit: &Unit) -> HeldUnixSocket {
        let path = PathBuf::from(unit.one("Socket", "ListenStream"));
        assert!(path.is_absolute(), "{}: a Unix socket", unit.name);
        let dir = path.parent().unwrap();
        let made_dir = !dir.exists();
        if made_dir {
            // DirectoryMode= (default 0755), root's.
            let mode = unit
                .get("Socket", "DirectoryMode")
                .map_or(0o755, |m| u32::from_str_radix(&m, 8).unwrap());
            std::fs::create_dir_all(dir).unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        if path.exists() {
            assert!(
                UnixStream::connect(&path).is_err(),
                "{} is served by something else (a tickerd under systemd?)",
                path.display()
            );
            std::fs::remove_file(&path).unwrap();
        }
        let listener = UnixListener::bind(&path).unwrap();
        let user = unit.get("Socket", "SocketUser").unwrap_or("root".into());
        let group = unit.get("Socket", "SocketGroup").unwrap_or("root".into());
        std::os::unix::fs::chown(&path, Some(user_id(&user)), Some(group_id(&group))).unwrap();
        let mode = unit
            .get("Socket", "SocketMode")
            .map_or(0o666, |m| u32::from_str_radix(&m, 8).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        HeldUnixSocket {
            listener,
            path,
            made_dir,
        }
    }
}

impl Drop for HeldUnixSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if self.made_dir {
            let _ = std::fs::remove_dir(self.path.parent().unwrap());
        }
    }
}

/// Whether `user` may connect to the Unix socket at `path` (curl as that user: 7 is
/// "could not connect"; connected, tickerd drops the HTTP request that is no SCGI).
fn can_connect_as(user: &str, path: &Path) -> bool {
    let out = Command::new("runuser")
        .args(["-u", user, "--", "curl", "-s", "-m", "5", "--unix-socket"])
        .arg(path)
        .arg("http://localhost/")
        .output()
        .expect("runuser and curl (.ci/run installs curl)");
    out.status.code() != Some(7)
}

/// The service's main process, started as systemd starts it; killed when dropped.
struct Service {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Service {
    /// ExecStart with the environment file's variables, as User=/Group=, with `fds` at 3, 4,
    /// ... named in LISTEN_FDNAMES, NOTIFY_SOCKET and a 2 s watchdog (the unit's is longer:
    /// too slow for a test). LISTEN_PID and WATCHDOG_PID are the pid of the shell that
    /// execs the binary, which keeps it.
    fn start(unit: &Unit, fds: &[(RawFd, String)], notify: &Path) -> Service {
        let mut env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            ("LISTEN_FDS".into(), fds.len().to_string()),
            (
                "LISTEN_FDNAMES".into(),
                fds.iter()
                    .map(|(_, n)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(":"),
            ),
            ("NOTIFY_SOCKET".into(), notify.display().to_string()),
            ("WATCHDOG_USEC".into(), "2000000".into()),
        ];
        for file in unit.all("Service", "EnvironmentFile") {
            let (optional, file) = match file.strip_prefix('-') {
                Some(f) => (true, f.to_string()),
                None => (false, file),
            };
            match std::fs::read_to_string(&file) {
                Ok(text) => env.extend(environment_file(&text)),
                Err(e) => assert!(optional, "{file}: {e}"),
            }
        }
        let vars: HashMap<String, String> = env.iter().cloned().collect();
        let argv = command_line(&unit.one("Service", "ExecStart"), &vars);
        let user = unit.one("Service", "User");
        let group = unit.get("Service", "Group").unwrap_or(user.clone());
        let fds: Vec<RawFd> = fds.iter().map(|(fd, _)| *fd).collect();
        assert!(fds.len() <= MAX_FDS);
        let mut cmd = Command::new("/bin/sh");
        cmd.args([
            "-c",
            "export LISTEN_PID=$$ WATCHDOG_PID=$$; exec \"$@\"",
            "sh",
        ])
        .args(&argv)
        .env_clear()
        .envs(env)
        .uid(user_id(&user))
        .gid(group_id(&group))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        dies_with_its_starter(&mut cmd);
        // SAFETY: fcntl, dup2 and close are async-signal-safe and touch only the child.
        unsafe {
            cmd.pre_exec(move || {
                // Out of the way first, so that no descriptor is overwritten before it is
                // moved; the copies have no close-on-exec flag. (No allocation after fork.)
                let mut high: [RawFd; MAX_FDS] = [-1; MAX_FDS];
                for (i, &fd) in fds.iter().enumerate() {
                    high[i] = libc::fcntl(fd, libc::F_DUPFD, 100);
                    if high[i] < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for (i, &h) in high[..fds.len()].iter().enumerate() {
                    if libc::dup2(h, 3 + i as RawFd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(h);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start the service's ExecStart");
        let log = collect_stderr(&mut child);
        Service { child, log }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    fn wait(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// systemd's EnvironmentFile= syntax, the part a Debian default file uses: NAME=value
/// lines, `#` comments, the value's outer quotes removed.
fn environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("NAME=value");
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// ExecStart's words as systemd makes them: `$NAME` becomes the variable's words (none when
/// it is empty or unset), `${NAME}` one word.
fn command_line(line: &str, vars: &HashMap<String, String>) -> Vec<String> {
    assert!(
        !line.starts_with(['@', '-', ':', '+', '!']),
        "no prefixes expected: {line}"
    );
    assert!(!line.contains('"'), "no quoting expected: {line}");
    let mut out = Vec::new();
    for word in line.split_whitespace() {
        if let Some(name) = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
            out.push(vars.get(name).cloned().unwrap_or_default());
        } else if let Some(name) = word.strip_prefix('$') {
            if let Some(v) = vars.get(name) {
                out.extend(v.split_whitespace().map(String::from));
            }
        } else {
            out.push(word.to_string());
        }
    }
    out
}

/// What the service sends to NOTIFY_SOCKET, in order.
struct Notifications {
    path: PathBuf,
    got: Arc<Mutex<Vec<String>>>,
}

impl Notifications {
    fn listen(path: &Path) -> Notifications {
        let socket = UnixDatagram::bind(path).unwrap();
        // The service runs as tickerd.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        });
        Notifications {
            path: path.to_path_buf(),
            got,
        }
    }

    fn len(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    fn wait_for(&self, state: &str, within: Duration, t: &Service) {
        self.wait_for_after(0, state, within, t)
    }

    /// Waits for a message after the first `mark` ones with `state` as one of its lines.
    fn wait_for_after(&self, mark: usize, state: &str, within: Duration, t: &Service) {
        let seen = wait_until(within, || {
            self.got.lock().unwrap()[mark..]
                .iter()
                .any(|m| m.lines().any(|l| l == state))
        });
        assert!(
            seen,
            "no {state} on NOTIFY_SOCKET: {:?}\n{}",
            self.got.lock().unwrap(),
            t.log()
        );
    }
}

// --- the maintainer scripts ------------------------------------------------------------

#[test]
#[ignore = "needs root and the Debian package installed: .ci/run"]
fn an_upgrade_reloads_the_service_and_never_restarts_a_socket() {
    assert_installed();
    let all = "tickerd-http.socket tickerd.service tickerd.socket";

    // A first installation under systemd: the units are enabled and started; no reload.
    let calls = maintainer_script(
        "postinst",
        &["configure"],
        Systemd::Running { active: false },
    );
    assert_has(&calls, "systemctl --system daemon-reload");
    assert_has(&calls, &format!("deb-systemd-invoke start {all}"));
    assert_has(&calls, "deb-systemd-helper enable tickerd.socket");
    assert_lacks(&calls, "deb-systemd-invoke reload");
    assert_never_restarts_or_stops(&calls);

    // An upgrade while tickerd runs: `start` (nothing to start), then the live upgrade.
    let calls = maintainer_script(
        "postinst",
        &["configure", "0.0.1-1"],
        Systemd::Running { active: true },
    );
    let start = position(&calls, &format!("deb-systemd-invoke start {all}"));
    let reload = position(&calls, "deb-systemd-invoke reload tickerd.service");
    assert!(
        start < reload,
        "reload after the units are in place: {calls:#?}"
    );
    assert_eq!(
        calls.iter().filter(|c| c.contains(" reload ")).count(),
        1,
        "{calls:#?}"
    );
    assert_never_restarts_or_stops(&calls);

    // An upgrade while it does not run: started like any enabled unit, no reload.
    let calls = maintainer_script(
        "postinst",
        &["configure", "0.0.1-1"],
        Systemd::Running { active: false },
    );
    assert_lacks(&calls, "deb-systemd-invoke reload");
    assert_never_restarts_or_stops(&calls);

    // Without systemd: no systemctl and no invoke (the links are still made).
    let calls = maintainer_script("postinst", &["configure", "0.0.1-1"], Systemd::Absent);
    assert_lacks(&calls, "systemctl");
    assert_lacks(&calls, "deb-systemd-invoke");
    assert_has(&calls, "deb-systemd-helper enable tickerd.service");

    // The old version's prerm on an upgrade stops nothing.
    let calls = maintainer_script(
        "prerm",
        &["upgrade", "0.1.1-1"],
        Systemd::Running { active: true },
    );
    assert_never_restarts_or_stops(&calls);
    // A removal stops the service and both sockets.
    let calls = maintainer_script("prerm", &["remove"], Systemd::Running { active: true });
    assert_has(&calls, &format!("deb-systemd-invoke stop {all}"));
}

#[derive(Clone, Copy)]
enum Systemd {
    Absent,
    Running { active: bool },
}

/// Runs the installed maintainer script `name` with `args` in a mount namespace of its own
/// with an empty /run (holding /run/systemd/system when systemd should seem to run), with
/// systemctl, deb-systemd-invoke, deb-systemd-helper and adduser stubbed: the calls they
/// got, one line each. Nothing outside the namespace changes (the user and the token
/// exist, so the script leaves them).
fn maintainer_script(name: &str, args: &[&str], systemd: Systemd) -> Vec<String> {
    let script = format!("/var/lib/dpkg/info/tickerd.{name}");
    assert!(Path::new(&script).exists(), "{script} ({WHY})");
    let dir = TempDir::new("package-scripts");
    let log = dir.join("calls");
    for stub in [
        "systemctl",
        "deb-systemd-invoke",
        "deb-systemd-helper",
        "adduser",
    ] {
        let path = dir.join(stub);
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(
            f,
            "#!/bin/sh\necho \"{stub} $*\" >>\"$STUB_LOG\"\n\
             case \" $* \" in *\" is-active \"*) exit \"$STUB_ACTIVE\";; esac\nexit 0"
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (running, active) = match systemd {
        Systemd::Absent => (false, false),
        Systemd::Running { active } => (true, active),
    };
    let setup = if running {
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec sh \"$@\""
    } else {
        "mount -t tmpfs tmpfs /run && exec sh \"$@\""
    };
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            setup,
            "sh",
        ])
        .arg(&script)
        .args(args)
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", dir.display()),
        )
        .env("STUB_LOG", &log)
        .env("STUB_ACTIVE", if active { "0" } else { "3" })
        .output()
        .expect("unshare (util-linux)");
    assert!(
        out.status.success(),
        "{name} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn position(calls: &[String], call: &str) -> usize {
    calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("no `{call}` in {calls:#?}"))
}

fn assert_has(calls: &[String], call: &str) {
    position(calls, call);
}

fn assert_lacks(calls: &[String], what: &str) {
    assert!(
        !calls.iter().any(|c| c.contains(what)),
        "`{what}` in {calls:#?}"
    );
}

/// No restart of anything (a socket's would refuse what waits in it) and no stop.
fn assert_never_restarts_or_stops(calls: &[String]) {
    for c in calls {
        let words: Vec<&str> = c.split_whitespace().collect();
        assert!(
            !words.iter().any(|w| w.contains("restart") || *w == "stop"),
            "`{c}` in {calls:#?}"
        );
    }
}

// --- helpers ---------------------------------------------------------------------------

fn assert_installed() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "{WHY}");
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "tickerd"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "install ok installed",
        "{WHY}"
    );
}

/// A command's stdout; it must succeed.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn user_id(name: &str) -> u32 {
    run("id", &["-u", name]).trim().parse().unwrap()
}

fn group_id(name: &str) -> u32 {
    let line = run("getent", &["group", name]);
    line.split(':').nth(2).unwrap().parse().unwrap()
}
