//! Apache httpd from the shipped `conf/apache.conf`, which takes its ports from the
//! environment. `-d` (its ServerRoot) is a scratch directory, where the pid file and runtime
//! files go, so parallel tests share nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Front;
use crate::common::{repo_root, which, TempDir};

/// Starts Apache in front of tickerd's SCGI listener at `scgi`.
pub fn start(scgi: SocketAddr) -> Front {
    start_with_env(vec![
        ("TICKERD_SCGI_HOST", scgi.ip().to_string()),
        ("TICKERD_SCGI_PORT", scgi.port().to_string()),
    ])
}

/// Starts Apache in front of tickerd's SCGI listener on the Unix socket at `socket`.
pub fn start_with_socket(socket: &Path) -> Front {
    start_with_env(vec![(
        "TICKERD_SCGI_SOCKET",
        socket.to_str().unwrap().to_string(),
    )])
}

fn start_with_env(env: Vec<(&'static str, String)>) -> Front {
    let binary = binary();
    let dir = TempDir::new("apache");
    let (root, pid_file) = (dir.to_path_buf(), dir.join("apache.pid"));
    Front::start("apache", dir, &pid_file, |port| {
        let mut cmd = Command::new(&binary);
        cmd.arg("-d")
            .arg(&root)
            .arg("-f")
            .arg(repo_root().join("conf/apache.conf"))
            .arg("-DFOREGROUND")
            .env("TICKERD_FRONT_PORT", port.to_string())
            .envs(env.iter().map(|(k, v)| (k, v)));
        cmd
    })
}

/// `apache2 -t -D DUMP_RUN_CFG` on the shipped file with only `env` of its variables set:
/// (success, output, which lists every Define with its value).
pub fn test_shipped(env: &[(&str, &str)]) -> (bool, String) {
    let dir = TempDir::new("apache-t");
    let mut cmd = Command::new(binary());
    cmd.arg("-d")
        .arg(&*dir)
        .arg("-f")
        .arg(repo_root().join("conf/apache.conf"))
        .args(["-t", "-D", "DUMP_RUN_CFG"]);
    for name in [
        "TICKERD_FRONT_PORT",
        "TICKERD_SCGI_HOST",
        "TICKERD_SCGI_PORT",
        "TICKERD_SCGI_SOCKET",
    ] {
        cmd.env_remove(name);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A missing Apache fails the test, saying what to install.
fn binary() -> PathBuf {
    which("apache2").expect(
        "Apache httpd is not installed: `apt-get install -y --no-install-recommends apache2-bin` \
         (.ci/run does it)",
    )
}
