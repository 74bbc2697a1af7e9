//! nginx from the shipped `conf/nginx.conf` with HTTP/2 turned on the way its header tells a
//! user to: extra `listen` lines (and the certificate) in `nginx-listen.conf`. One nginx
//! serves three ports: HTTP/1.1, TLS with ALPN (h2 or HTTP/1.1), and cleartext h2c, which in
//! nginx 1.22 is prior knowledge only (`listen ... http2` without `ssl`).

use std::net::SocketAddr;
use std::process::Command;

use super::fronts::Front;
use super::h2::{tool, TestCert};
use super::{free_port, repo_root, TempDir};

/// A running nginx and its HTTP/2 addresses; `front.addr` is the HTTP/1.1 port.
pub struct NginxH2 {
    pub front: Front,
    pub tls: SocketAddr,
    pub h2c: SocketAddr,
}

/// Starts nginx in front of tickerd's SCGI listener at `scgi`, with the TLS listener serving
/// `cert`. `extra` goes into the listen snippet too (server context), for a test that
/// needs a directive the shipped file leaves at its default.
pub fn start(scgi: SocketAddr, cert: &TestCert, extra: &str) -> NginxH2 {
    let binary = tool("nginx", "nginx-light");
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
