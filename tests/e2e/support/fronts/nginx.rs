//! nginx from the shipped `conf/nginx.conf`. nginx reads no environment in its config, so
//! the file includes its two addresses from snippets beside it: the test symlinks it into a
//! scratch directory and writes its own snippets there (nginx resolves `include` against the
//! directory of the `-c` path as given). The same directory is the `-p` prefix, where the pid
//! file and temp dirs go, so parallel tests share nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::super::h2::TestCert;
use super::super::{free_port, repo_root, which, TempDir};
use super::Front;

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
    start_from("nginx.conf", upstream, &[])
}

/// Starts nginx from another file of `conf/` (`nginx-auth.conf`), with `upstream` as its
/// `nginx-backend.conf` and `files` (name, content) written beside it.
pub fn start_from(conf_name: &str, upstream: &str, files: &[(&str, &str)]) -> Front {
    let binary = binary();
    let dir = TempDir::new("nginx");
    let conf = dir.join("nginx.conf");
    std::os::unix::fs::symlink(repo_root().join("conf").join(conf_name), &conf).unwrap();
    std::fs::write(dir.join("nginx-backend.conf"), upstream).unwrap();
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
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

/// A running nginx and its HTTP/2 addresses; `front.addr` is the HTTP/1.1 port.
pub struct NginxH2 {
    pub front: Front,
    pub tls: SocketAddr,
    pub h2c: SocketAddr,
}

/// Starts nginx with HTTP/2 turned on the way the shipped file's header tells a user to:
/// extra `listen` lines (and the certificate) in `nginx-listen.conf`. One nginx serves three
/// ports: HTTP/1.1, TLS with ALPN (h2 or HTTP/1.1), and cleartext h2c, which in nginx 1.22
/// is prior knowledge only (`listen ... http2` without `ssl`). It is in front of tickerd's
/// SCGI listener at `scgi`, with the TLS listener serving `cert`. `extra` goes into the
/// listen snippet too (server context), for a test that needs a directive the shipped file
/// leaves at its default.
pub fn start_h2(scgi: SocketAddr, cert: &TestCert, extra: &str) -> NginxH2 {
    let binary = binary();
    let dir = TempDir::new("nginx-h2");
    let conf = dir.join("nginx.conf");
    std::os::unix::fs::symlink(repo_root().join("conf/nginx.conf"), &conf).unwrap();
    std::fs::write(
        dir.join("nginx-backend.conf"),
        format!("upstream tickerd {{ server {scgi}; }}\n"),
    )
    .unwrap();
    let pid_file = dir.join("nginx.pid");
    let (mut tls, mut h2c) = (0, 0);
    // nginx writes its pid file only once every listener is bound, so Front::start, which
    // waits for it, retries all three ports when any of them was taken meanwhile.
    let root = dir.to_path_buf();
    let front = Front::start("nginx", dir, &pid_file, |port| {
        (tls, h2c) = distinct_ports(port);
        let snippet = format!(
            "listen 127.0.0.1:{port};\n\
             listen 127.0.0.1:{tls} ssl http2;\n\
             listen 127.0.0.1:{h2c} http2;\n\
             ssl_certificate {};\n\
             ssl_certificate_key {};\n\
             {extra}\n",
            cert.cert.display(),
            cert.key.display(),
        );
        std::fs::write(root.join("nginx-listen.conf"), snippet).unwrap();
        let mut cmd = Command::new(&binary);
        cmd.arg("-p")
            .arg(&root)
            .arg("-c")
            .arg(&conf)
            .args(["-e", "stderr"]);
        cmd
    });
    NginxH2 {
        front,
        tls: ([127, 0, 0, 1], tls).into(),
        h2c: ([127, 0, 0, 1], h2c).into(),
    }
}

/// Two free ports, different from `taken` and from each other.
fn distinct_ports(taken: u16) -> (u16, u16) {
    for _ in 0..20 {
        let (a, b) = (free_port(), free_port());
        if a != b && a != taken && b != taken {
            return (a, b);
        }
    }
    panic!("no two distinct free ports");
}

/// A missing nginx fails the test, saying what to install.
fn binary() -> PathBuf {
    which("nginx").expect(
        "nginx is not installed: `apt-get install -y --no-install-recommends nginx-light` \
         (.ci/run does it)",
    )
}

/// nginx (workers as www-data, like Debian's) with the packaged example in its server block.
pub fn with_the_packaged_example() -> Front {
    let example = Path::new("/usr/share/doc/tickerd/examples/nginx-tickerd.conf");
    assert!(
        example.exists(),
        "{} (needs root and the Debian package installed: .ci/run)",
        example.display()
    );
    let dir = TempDir::new("package-nginx");
    let (root, pid_file) = (dir.to_path_buf(), dir.join("nginx.pid"));
    let binary = which("nginx").expect("nginx (.ci/run installs it)");
    Front::start("nginx", dir, &pid_file, |port| {
        let conf = format!(
            "user www-data;\ndaemon off;\nworker_processes 1;\npid nginx.pid;\n\
             error_log stderr notice;\nevents {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path body;\n  \
             proxy_temp_path proxy;\n  fastcgi_temp_path fastcgi;\n  uwsgi_temp_path uwsgi;\n  \
             scgi_temp_path scgi;\n  server {{\n    listen 127.0.0.1:{port};\n    \
             server_name localhost;\n    root {d};\n    include {e};\n  }}\n}}\n",
            d = root.display(),
            e = example.display()
        );
        let path = root.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let mut cmd = Command::new(&binary);
        cmd.arg("-p")
            .arg(&root)
            .arg("-c")
            .arg(&path)
            .args(["-e", "stderr"]);
        cmd
    })
}
