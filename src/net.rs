//! Listeners and accepted sockets, TCP or Unix, behind one type each.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use crate::config::ListenAddr;

pub(crate) enum Listener {
    Tcp(TcpListener),
    /// The path, when tickerd made the socket, is removed when the listener goes; one that
    /// was inherited (systemd made it) is left alone.
    Unix(UnixListener, Option<PathBuf>),
}

impl Listener {
    /// Binds, and for a Unix socket sets the file's mode. A stale socket file left by a run
    /// that died is replaced; a live one (something answers on it) is an error.
    pub fn bind(addr: &ListenAddr, mode: u32) -> io::Result<Listener> {
        match addr {
            ListenAddr::Tcp(addr) => bind_tcp(*addr).map(Listener::Tcp),
            ListenAddr::Unix(path) => {
                remove_stale_socket(path)?;
                let listener = bind_unix(path)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                Ok(Listener::Unix(listener, Some(path.clone())))
            }
        }
    }

    /// A listening socket this process was given (systemd, lighttpd's bin-path, or the
    /// binary before a live upgrade), TCP or Unix, made non-blocking.
    pub fn from_fd(fd: std::os::fd::RawFd) -> io::Result<Listener> {
        use std::os::fd::FromRawFd;
        // SAFETY: the descriptor was handed to this process to own, and is taken once.
        let socket = unsafe { socket2::Socket::from_raw_fd(fd) };
        socket.set_nonblocking(true)?;
        socket.set_cloexec(true)?;
        match socket.local_addr()?.family() as i32 {
            libc::AF_UNIX => Ok(Listener::Unix(UnixListener::from_std(socket.into()), None)),
            libc::AF_INET | libc::AF_INET6 => {
                Ok(Listener::Tcp(TcpListener::from_std(socket.into())))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("descriptor {fd} is not a TCP or Unix socket"),
            )),
        }
    }

    pub fn accept(&self) -> io::Result<(Socket, Option<SocketAddr>)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept()?;
                // Events are small and latency matters more than packet count.
                let _ = s.set_nodelay(true);
                Ok((Socket::Tcp(s), Some(peer)))
            }
            Listener::Unix(l, _) => l.accept().map(|(s, _)| (Socket::Unix(s), None)),
        }
    }

    /// The address actually bound (port 0 resolved), for the start-up log line.
    pub fn local_addr(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "?".into()),
            Listener::Unix(l, path) => match (path, l.local_addr()) {
                (Some(path), _) => format!("unix:{}", path.display()),
                (None, Ok(addr)) => match addr.as_pathname() {
                    Some(path) => format!("unix:{}", path.display()),
                    None => "unix:(unnamed)".into(),
                },
                (None, Err(_)) => "unix:?".into(),
            },
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, Some(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The listen backlog asked for; the kernel caps it at `net.core.somaxconn` (4096 here).
/// mio's own bind asks for 1024, which a ramp of thousands of browsers overflows: the
/// dropped SYNs are retried only a second later.
const BACKLOG: i32 = 4096;

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket as RawSocket, Type};
    let socket = RawSocket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // A restart must not wait for the last run's connections in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    use socket2::{Domain, SockAddr, Socket as RawSocket, Type};
    let socket = RawSocket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(BACKLOG)?;
    Ok(UnixListener::from_std(socket.into()))
}

fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(meta) if !meta.file_type().is_socket() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by a running server", path.display()),
            )),
            Err(_) => std::fs::remove_file(path),
        },
    }
}

impl Source for Listener {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.register(r, t, i),
            Listener::Unix(l, _) => l.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.reregister(r, t, i),
            Listener::Unix(l, _) => l.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.deregister(r),
            Listener::Unix(l, _) => l.deregister(r),
        }
    }
}

pub(crate) enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            Socket::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write(buf),
            Socket::Unix(s) => s.write(buf),
        }
    }
    /// One `writev` for a batch of updates (the default would write the first piece only).
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write_vectored(bufs),
            Socket::Unix(s) => s.write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl crate::io::Socket for Socket {
    fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.shutdown(Shutdown::Write),
            Socket::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }
}

impl Source for Socket {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.register(r, t, i),
            Socket::Unix(s) => s.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.reregister(r, t, i),
            Socket::Unix(s) => s.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.deregister(r),
            Socket::Unix(s) => s.deregister(r),
        }
    }
}

impl std::os::fd::AsRawFd for Socket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Socket::Tcp(s) => s.as_raw_fd(),
            Socket::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl std::os::fd::AsRawFd for Listener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l, _) => l.as_raw_fd(),
        }
    }
}

impl Socket {
    /// A connected socket handed over by the binary before a live upgrade: still
    /// non-blocking (a file status flag, kept across exec), TCP when it has a peer address
    /// (accept gives one for TCP only). One system call: close-on-exec back on.
    pub fn from_handed_over(fd: std::os::fd::RawFd, tcp: bool) -> io::Result<Socket> {
        use std::os::fd::FromRawFd;
        // SAFETY: ioctl FIOCLEX on a descriptor handed to this process to own.
        if unsafe { libc::ioctl(fd, libc::FIOCLEX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor was handed to this process to own, and is taken once.
        Ok(match tcp {
            true => Socket::Tcp(unsafe { TcpStream::from_raw_fd(fd) }),
            false => Socket::Unix(unsafe { UnixStream::from_raw_fd(fd) }),
        })
    }

    /// Starts a non-blocking connect (for the Redis link): done when the socket is writable
    /// and `connect_result` says so.
    pub fn connect(addr: &ListenAddr) -> io::Result<Socket> {
        match addr {
            ListenAddr::Tcp(addr) => {
                let s = TcpStream::connect(*addr)?;
                let _ = s.set_nodelay(true);
                Ok(Socket::Tcp(s))
            }
            ListenAddr::Unix(path) => UnixStream::connect(path).map(Socket::Unix),
        }
    }

    /// Whether a connect is done, once the socket says it is writable (mio's `connect`
    /// docs: check `take_error`, then whether there is a peer; `NotConnected` means a
    /// spurious wake-up, still in progress).
    pub fn connect_result(&self) -> Option<io::Result<()>> {
        let (error, peer) = match self {
            Socket::Tcp(s) => (s.take_error(), s.peer_addr().map(|_| ())),
            Socket::Unix(s) => (s.take_error(), s.peer_addr().map(|_| ())),
        };
        match (error, peer) {
            (Ok(Some(e)), _) | (Err(e), _) => Some(Err(e)),
            (Ok(None), Ok(())) => Some(Ok(())),
            (Ok(None), Err(e)) if e.kind() == io::ErrorKind::NotConnected => None,
            (Ok(None), Err(e)) => Some(Err(e)),
        }
    }
}

/// Raises the soft open-file limit to the hard one and returns it: every stream is a
/// descriptor, and the default soft limit (1024) is far below what one process can hold.
pub fn raise_open_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::IoSlice;

    /// A batch of updates leaves in one system call: the socket forwards `write_vectored`
    /// (the default would write the first piece alone).
    #[test]
    fn write_vectored_sends_every_piece_at_once() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut socket = Socket::Unix(UnixStream::from_std(a));
        let n = socket
            .write_vectored(&[
                IoSlice::new(b"head|"),
                IoSlice::new(b"one;"),
                IoSlice::new(b"two;"),
            ])
            .unwrap();
        assert_eq!(n, 13);
        let mut got = [0u8; 13];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"head|one;two;");
    }
}
