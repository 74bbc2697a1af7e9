//! Apache httpd from the shipped `conf/apache.conf`, which takes its ports from the
//! environment. `-d` (its ServerRoot) is a scratch directory, where the pid file and runtime
//! files go, so parallel tests share nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::super::{repo_root, which, TempDir};
use super::Front;

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
    start_from("apache.conf", env)
}

/// Starts Apache from another file of `conf/` (`apache-auth.conf`) with `env`.
pub fn start_from(conf_name: &str, env: Vec<(&'static str, String)>) -> Front {
    let binary = binary();
    let dir = TempDir::new("apache");
    let (root, pid_file) = (dir.to_path_buf(), dir.join("apache.pid"));
    Front::start("apache", dir, &pid_file, |port| {
        let mut cmd = Command::new(&binary);
        cmd.arg("-d")
            .arg(&root)
            .arg("-f")
            .arg(repo_root().join("conf").join(conf_name))
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

/// Apache (workers as www-data) with Debian's modules and the packaged example.
pub fn with_the_packaged_example() -> Front {
    let example = Path::new("/usr/share/doc/tickerd/examples/apache-tickerd.conf");
    assert!(
        example.exists(),
        "{} (needs root and the Debian package installed: .ci/run)",
        example.display()
    );
    let dir = TempDir::new("package-apache");
    let (root, pid_file) = (dir.to_path_buf(), dir.join("apache.pid"));
    let binary = which("apache2").expect("apache2 (.ci/run installs apache2-bin)");
    Front::start("apache", dir, &pid_file, |port| {
        let mut conf = String::new();
        for (name, file) in [
            ("mpm_event", "mod_mpm_event"),
            ("authz_core", "mod_authz_core"),
            ("alias", "mod_alias"),
            ("setenvif", "mod_setenvif"),
            ("proxy", "mod_proxy"),
            ("proxy_scgi", "mod_proxy_scgi"),
        ] {
            conf.push_str(&format!(
                "LoadModule {name}_module /usr/lib/apache2/modules/{file}.so\n"
            ));
        }
        conf.push_str(&format!(
            "Listen 127.0.0.1:{port}\nServerName localhost\nPidFile apache.pid\n\
             DefaultRuntimeDir .\nErrorLog /dev/stderr\nLogLevel warn\nUser www-data\n\
             Group www-data\nDocumentRoot {d}\nInclude {e}\n",
            d = root.display(),
            e = example.display()
        ));
        let path = root.join("apache.conf");
        std::fs::write(&path, conf).unwrap();
        let mut cmd = Command::new(&binary);
        cmd.arg("-d")
            .arg(&root)
            .arg("-f")
            .arg(&path)
            .arg("-DFOREGROUND");
        cmd
    })
}
