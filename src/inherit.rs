//! Listening sockets that outlive the process, so that a restart refuses nobody: they wait
//! in the kernel's backlog while no process accepts.
//!
//! - systemd socket activation (`sd_listen_fds(3)`): `LISTEN_PID` must be our pid,
//!   `LISTEN_FDS` says how many descriptors from 3, `LISTEN_FDNAMES` names them `scgi` and
//!   `http`; unnamed, the first is SCGI and the second HTTP. A live upgrade hands its
//!   listeners to the next binary the same way (same pid).
//! - lighttpd's `bin-path` (mod_scgi spawns the backend with its listening socket on fd 0):
//!   when fd 0 is a listening socket, it is the SCGI listener.

use std::os::fd::RawFd;

/// What an inherited listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Scgi,
    Http,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Scgi => "scgi",
            Role::Http => "http",
        }
    }
}

/// Where the inherited listeners came from (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Systemd,
    BinPath,
    /// The binary before a live upgrade.
    Upgrade,
}

/// The roles of descriptors passed with names (systemd's `FileDescriptorName=`, or a live
/// upgrade's): `scgi`, `http`; unnamed (`unknown`, or empty): the first SCGI, the second
/// HTTP. Anything else, more than one of a role, or more than two, is an error.
pub fn assign(fds: &[(RawFd, String)]) -> Result<Vec<(RawFd, Role)>, String> {
    let mut out: Vec<(RawFd, Role)> = Vec::new();
    for (n, (fd, name)) in fds.iter().enumerate() {
        let role = match name.as_str() {
            "scgi" => Role::Scgi,
            "http" => Role::Http,
            "" | "unknown" | "stored" | "connection" => match n {
                0 => Role::Scgi,
                1 => Role::Http,
                _ => {
                    return Err(format!(
                        "LISTEN_FDS: descriptor {fd} has no name and is not the first or second"
                    ))
                }
            },
            other => {
                return Err(format!(
                    "LISTEN_FDNAMES: {other:?} is not a listener of tickerd's (scgi, http)"
                ))
            }
        };
        if out.iter().any(|&(_, r)| r == role) {
            return Err(format!("LISTEN_FDS: two {} listeners", role.name()));
        }
        out.push((*fd, role));
    }
    Ok(out)
}

/// The listeners systemd (or the binary before a live upgrade) passed, if any.
pub fn from_systemd() -> Result<Vec<(RawFd, Role)>, String> {
    let fds: Vec<(RawFd, String)> = sd_notify::listen_fds_with_names()
        .map_err(|e| format!("LISTEN_FDS: {e}"))?
        .collect();
    assign(&fds)
}

/// Whether `fd` is a listening socket.
pub fn is_listening_socket(fd: RawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`; a descriptor that is not
    // a socket answers ENOTSOCK.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            &mut value as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    r == 0 && value != 0
}

/// Listening sockets this process was given, and by whom.
pub type Inherited = (Source, Vec<(RawFd, Role)>);

/// The listeners this process was given, and by whom: systemd's first, then fd 0.
pub fn listeners() -> Result<Option<Inherited>, String> {
    let systemd = from_systemd()?;
    if !systemd.is_empty() {
        return Ok(Some((Source::Systemd, systemd)));
    }
    if is_listening_socket(0) {
        return Ok(Some((Source::BinPath, vec![(0, Role::Scgi)])));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[&str]) -> Vec<(RawFd, String)> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (3 + i as RawFd, n.to_string()))
            .collect()
    }

    #[test]
    fn names_and_order() {
        assert_eq!(
            assign(&named(&["http", "scgi"])),
            Ok(vec![(3, Role::Http), (4, Role::Scgi)])
        );
        assert_eq!(
            assign(&named(&["unknown", "unknown"])),
            Ok(vec![(3, Role::Scgi), (4, Role::Http)])
        );
        assert_eq!(assign(&named(&["unknown"])), Ok(vec![(3, Role::Scgi)]));
        assert_eq!(assign(&named(&["http"])), Ok(vec![(3, Role::Http)]));
        assert_eq!(assign(&[]), Ok(vec![]));
    }

    #[test]
    fn refusals() {
        assert!(assign(&named(&["scgi", "scgi"]))
            .unwrap_err()
            .contains("two scgi"));
        assert!(assign(&named(&["ftp"])).unwrap_err().contains("\"ftp\""));
        assert!(assign(&named(&["a", "b", "c"])).is_err());
        assert!(assign(&named(&["", "", ""])).is_err());
    }

    #[test]
    fn a_listening_socket_is_told_from_others() {
        use std::os::fd::AsRawFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(is_listening_socket(l.as_raw_fd()));
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert!(!is_listening_socket(s.as_raw_fd()));
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(!is_listening_socket(f.as_raw_fd()));
    }
}
