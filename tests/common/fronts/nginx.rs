//! nginx from the shipped `conf/nginx.conf`. nginx reads no environment in its config, so
//! the file includes its two addresses from snippets beside it: the test symlinks it into a
//! scratch directory and writes its own snippets there (nginx resolves `include` against the
//! directory of the `-c` path as given). The same directory is the `-p` prefix, where the pid
//! file and temp dirs go, so parallel tests share nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use super::Front;
use crate::common::{repo_root, which, TempDir};

/// Starts nginx in front of tickerd's SCGI listener at `scgi`.
pub fn start(scgi: SocketAddr) -> Front {
    start_with_backend(&scgi.to_string())
}

/// Starts nginx with `server` as tickerd's address in its upstream (`unix:/path` works too).
pub fn start_with_backend(server: &str) -> Front {
    start_with_upstream(&format!("upstream tickerd {{ server {server}; }}\n"))
}

/// Starts nginx with `upstream` as its `nginx-backend.conf` (several instances, say).
pub fn start_with_upstream(upstream: &str) -> Front {
    let binary = binary();
    let dir = TempDir::new("nginx");
    let conf = dir.join("nginx.conf");
    std::os::unix::fs::symlink(repo_root().join("conf/nginx.conf"), &conf).unwrap();
    std::fs::write(dir.join("nginx-backend.conf"), upstream).unwrap();
    let pid_file = dir.join("nginx.pid");
    let root = dir.to_path_buf();
    Front::start("nginx", dir, &pid_file, |port| {
        std::fs::write(
            root.join("nginx-listen.conf"),
            format!("listen 127.0.0.1:{port};\n"),
        )
        .unwrap();
        let mut cmd = Command::new(&binary);
        cmd.arg("-p")
            .arg(&root)
            .arg("-c")
            .arg(&conf)
            .args(["-e", "stderr"]);
        cmd
    })
}

/// `nginx -T` on the shipped file with the shipped snippets beside it: (success, output).
pub fn test_shipped() -> (bool, String) {
    let dir = TempDir::new("nginx-t");
    let out = Command::new(binary())
        .arg("-p")
        .arg(&*dir)
        .arg("-c")
        .arg(repo_root().join("conf/nginx.conf"))
        .args(["-e", "stderr", "-T"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A missing nginx fails the test, saying what to install.
fn binary() -> PathBuf {
    which("nginx").expect(
        "nginx is not installed: `apt-get install -y --no-install-recommends nginx-light` \
         (.ci/run does it)",
    )
}
