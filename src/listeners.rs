//! Where the listening sockets come from, in one place: bound from the flags (`--scgi`,
//! `--http`), or inherited, so that a restart refuses nobody (connections wait in the
//! kernel's backlog while no process accepts):
//!
//! - systemd socket activation (`sd_listen_fds(3)`): `LISTEN_PID` must be our pid,
//!   `LISTEN_FDS` says how many descriptors from 3, `LISTEN_FDNAMES` names them `scgi` and
//!   `http`; unnamed, the first is SCGI and the second HTTP.
//! - lighttpd's `bin-path` (mod_scgi spawns the backend with its listening socket on fd 0):
//!   when fd 0 is a listening socket, it is the SCGI listener.
//! - a live upgrade: the binary before it names its listeners in [`HANDOVER_ENV`]
//!   (`scgi:7,http:8`), beside the record of its connections.
//!
//! An inherited listener replaces the flag's address (logged); a bin-path spawn adds an
//! HTTP listener only when `--http` was given.

use std::io;
use std::os::fd::RawFd;

use crate::config::{Config, ListenAddr};
use crate::net::Listener;
use crate::protocol::Protocol;

/// The listeners a live upgrade hands over: `scgi:7,http:8`.
pub const HANDOVER_ENV: &str = "TICKERD_HANDOVER_LISTENERS";

/// Who gave this process its listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Systemd,
    BinPath,
    /// The binary before a live upgrade.
    Upgrade,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Systemd => "systemd (LISTEN_FDS)",
            Source::BinPath => "the spawning front-end (fd 0)",
            Source::Upgrade => "the binary before the upgrade",
        }
    }
}

/// Listening sockets this process was given, and by whom.
pub type Inherited = (Source, Vec<(RawFd, Protocol)>);

/// The listeners this process was given, and by whom: a live upgrade's (`handed`), else
/// systemd's, else fd 0. An error (systemd's variables naming what tickerd does not serve)
/// is a configuration error.
pub fn inherited(handed: Option<Vec<(RawFd, Protocol)>>) -> Result<Option<Inherited>, String> {
    if let Some(fds) = handed {
        return Ok(Some((Source::Upgrade, fds)));
    }
    let systemd = from_systemd()?;
    if !systemd.is_empty() {
        return Ok(Some((Source::Systemd, systemd)));
    }
    if is_listening_socket(0) {
        return Ok(Some((Source::BinPath, vec![(0, Protocol::Scgi)])));
    }
    Ok(None)
}

/// The listeners to serve: the inherited ones in place of the flags' addresses (logged); a
/// bin-path spawn adds an HTTP listener only when `--http` was given.
pub fn open(
    config: &Config,
    inherited: Option<Inherited>,
) -> io::Result<Vec<(Listener, Protocol)>> {
    let mut out = Vec::new();
    let mut bind = |addr: &ListenAddr, protocol| -> io::Result<()> {
        let listener = Listener::bind(addr, config.socket_mode)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        out.push((listener, protocol));
        Ok(())
    };
    let Some((source, fds)) = inherited else {
        if let Some(addr) = &config.scgi {
            bind(addr, Protocol::Scgi)?;
        }
        if let Some(addr) = &config.http {
            bind(addr, Protocol::Http)?;
        }
        return Ok(out);
    };
    if source == Source::BinPath && config.http_given {
        if let Some(addr) = &config.http {
            bind(addr, Protocol::Http)?;
        }
    }
    for (fd, protocol) in fds {
        let listener = Listener::from_fd(fd)
            .map_err(|e| io::Error::new(e.kind(), format!("inherited descriptor {fd}: {e}")))?;
        log::info!(
            "{} listener {} inherited from {}: it replaces the --{} address",
            protocol.name(),
            listener.local_addr(),
            source.label(),
            protocol.name(),
        );
        out.push((listener, protocol));
    }
    Ok(out)
}

/// The protocols of descriptors passed with names (systemd's `FileDescriptorName=`):
/// `scgi`, `http`; unnamed (`unknown`, or empty): the first SCGI, the second HTTP. Anything
/// else, more than one of a protocol, or more than two, is an error.
pub fn assign(fds: &[(RawFd, String)]) -> Result<Vec<(RawFd, Protocol)>, String> {
    let mut out: Vec<(RawFd, Protocol)> = Vec::new();
    for (n, (fd, name)) in fds.iter().enumerate() {
        let protocol = match (Protocol::named(name), name.as_str()) {
            (Some(p), _) => p,
            (None, "" | "unknown" | "stored" | "connection") => match n {
                0 => Protocol::Scgi,
                1 => Protocol::Http,
                _ => {
                    return Err(format!(
                        "LISTEN_FDS: descriptor {fd} has no name and is not the first or second"
                    ))
                }
            },
            (None, other) => {
                return Err(format!(
                    "LISTEN_FDNAMES: {other:?} is not a listener of tickerd's (scgi, http)"
                ))
            }
        };
        if out.iter().any(|&(_, p)| p == protocol) {
            return Err(format!("LISTEN_FDS: two {} listeners", protocol.name()));
        }
        out.push((*fd, protocol));
    }
    Ok(out)
}

/// The listeners systemd passed, if any.
fn from_systemd() -> Result<Vec<(RawFd, Protocol)>, String> {
    let fds: Vec<(RawFd, String)> = sd_notify::listen_fds_with_names()
        .map_err(|e| format!("LISTEN_FDS: {e}"))?
        .collect();
    assign(&fds)
}

/// Whether `fd` is a listening socket.
fn is_listening_socket(fd: RawFd) -> bool {
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

/// The listeners as a live upgrade names them for the next binary: `scgi:7,http:8`.
pub fn handover_env(listeners: &[(RawFd, Protocol)]) -> String {
    listeners
        .iter()
        .map(|(fd, p)| format!("{}:{fd}", p.name()))
        .collect::<Vec<_>>()
        .join(",")
}

/// `scgi:7,http:8` back into descriptors and protocols.
pub fn parse_handover_env(text: &str) -> Result<Vec<(RawFd, Protocol)>, String> {
    text.split(',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, fd) = part
                .split_once(':')
                .ok_or_else(|| format!("{HANDOVER_ENV}: {part:?} is not ROLE:FD"))?;
            let protocol = Protocol::named(name)
                .ok_or_else(|| format!("{HANDOVER_ENV}: unknown role {name:?}"))?;
            let fd = fd
                .parse::<RawFd>()
                .ok()
                .filter(|fd| *fd >= 0)
                .ok_or_else(|| format!("{HANDOVER_ENV}: {fd:?} is not a descriptor"))?;
            Ok((fd, protocol))
        })
        .collect()
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
            Ok(vec![(3, Protocol::Http), (4, Protocol::Scgi)])
        );
        assert_eq!(
            assign(&named(&["unknown", "unknown"])),
            Ok(vec![(3, Protocol::Scgi), (4, Protocol::Http)])
        );
        assert_eq!(assign(&named(&["unknown"])), Ok(vec![(3, Protocol::Scgi)]));
        assert_eq!(assign(&named(&["http"])), Ok(vec![(3, Protocol::Http)]));
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
    fn the_handover_variable_round_trips() {
        let l = vec![(7, Protocol::Scgi), (8, Protocol::Http)];
        assert_eq!(handover_env(&l), "scgi:7,http:8");
        assert_eq!(parse_handover_env("scgi:7,http:8"), Ok(l));
        assert_eq!(parse_handover_env(""), Ok(vec![]));
        assert!(parse_handover_env("ftp:3").is_err());
        assert!(parse_handover_env("scgi:-1").is_err());
        assert!(parse_handover_env("scgi").is_err());
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
