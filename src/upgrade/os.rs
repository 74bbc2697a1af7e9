//! The operating system's side of a live upgrade: the record in a memfd, descriptors kept
//! open across the exec, signals held across it, `execve` itself, and, in the next binary,
//! reading the record and closing what it cannot take.

use std::ffi::OsString;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{FromRawFd, RawFd};

/// The record, in a memfd that stays open across the exec (no close-on-exec).
pub(super) fn memfd(bytes: &[u8]) -> io::Result<std::fs::File> {
    // SAFETY: memfd_create with a NUL-terminated name; the descriptor is owned by the File.
    let fd = unsafe { libc::memfd_create(c"tickerd-handover".as_ptr(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(bytes)?;
    file.rewind()?;
    Ok(file)
}

/// The bytes of the memfd whose number the previous binary left in the environment.
pub(super) fn read_memfd(fd: RawFd) -> io::Result<Vec<u8>> {
    // SAFETY: the previous binary left this memfd open for us to own.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Replaces this process with `exe`, with `args` and exactly `env`; returns only on failure.
/// (execve itself, not std's Command: std empties the signal mask before it execs, which
/// would deliver the held signals to this binary's handlers and lose them.)
pub(super) fn execve(
    exe: &std::path::Path,
    args: &[OsString],
    env: &[(OsString, OsString)],
) -> io::Error {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |b: &[u8]| CString::new(b).map_err(|_| io::Error::other("a NUL in an argument"));
    let prepared = (|| -> io::Result<(CString, Vec<CString>, Vec<CString>)> {
        let path = c(exe.as_os_str().as_bytes())?;
        let mut argv = vec![path.clone()];
        for a in args {
            argv.push(c(a.as_bytes())?);
        }
        let mut envp = Vec::with_capacity(env.len());
        for (k, v) in env {
            envp.push(c(&[k.as_bytes(), b"=", v.as_bytes()].concat())?);
        }
        Ok((path, argv, envp))
    })();
    let (path, argv, envp) = match prepared {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: NUL-terminated strings and NULL-terminated arrays that outlive the call.
    unsafe {
        libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
    }
    io::Error::last_os_error()
}

/// The signals tickerd handles.
const HANDLED: [libc::c_int; 4] = [libc::SIGUSR2, libc::SIGHUP, libc::SIGTERM, libc::SIGINT];

/// Blocks the signals tickerd handles: they stay pending across the exec (the mask is
/// inherited, pending signals kept), for the next binary to take once its handlers are in
/// place. Those in `caught` (taken by this process's handler already) are raised again, so
/// that they wait too: a stop asked during an upgrade stops the next binary.
pub(super) fn hold_signals(caught: impl Iterator<Item = libc::c_int>) {
    mask_signals(libc::SIG_BLOCK);
    for signal in caught {
        if signal != libc::SIGUSR2 {
            // SAFETY: raise sends a signal to this thread; it stays pending (blocked).
            unsafe {
                libc::raise(signal);
            }
        }
    }
}

/// Unblocks the signals tickerd handles: after a live upgrade, once the handlers are in
/// place, those the previous binary held come now (a no-op at an ordinary start); after a
/// failed exec, those held since.
pub fn release_signals() {
    mask_signals(libc::SIG_UNBLOCK);
}

fn mask_signals(how: libc::c_int) {
    // SAFETY: sigemptyset/sigaddset fill a local set; pthread_sigmask changes this thread's
    // mask only (tickerd serves from one thread).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in HANDLED {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// Keeps `fd` open across the exec (`on` false), or closes it on exec again.
pub(super) fn set_cloexec(fd: RawFd, on: bool) {
    // SAFETY: ioctl on a descriptor this process owns; only its close-on-exec flag changes.
    unsafe {
        libc::ioctl(fd, if on { libc::FIOCLEX } else { libc::FIONCLEX });
    }
}

/// Closes every descriptor above stderr but `keep` (the connections of a record that cannot
/// be read): their streams end, and browsers come back with their Last-Event-ID.
pub(super) fn close_all_but(keep: &[RawFd]) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2 && !keep.contains(&fd))
        .collect();
    for &fd in &fds {
        // SAFETY: closing descriptors inherited across the exec, which nothing here owns
        // yet (the directory's own descriptor closes once more, harmlessly).
        unsafe {
            libc::close(fd);
        }
    }
    fds.len()
}

/// The wall clock in µs since the epoch.
pub(super) fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
