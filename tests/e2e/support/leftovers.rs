//! What a test run killed before its Drops could run (SIGKILL, Ctrl-C, a CI timeout) would
//! leave behind, and how the next run ends it. Servers a test starts die with it
//! ([`dies_with_its_starter`]); what they started in turn (Chromium's helpers, nginx's
//! workers, Apache's children) is found through the run's scratch directories, which are
//! named after the test process: `tickerd-{what}-{pid}-{n}` (see `super::TempDir`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::SCRATCH;

/// Has `cmd`'s process killed (SIGKILL) when the thread that starts it ends. PR_SET_PDEATHSIG's
/// "parent" is the starting thread: start servers in the test's own thread, not in a helper
/// thread that ends first.
pub fn dies_with_its_starter(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid(2) has no preconditions.
    let starter = unsafe { libc::getpid() };
    // SAFETY: prctl(2), getppid(2) and _exit(2) are async-signal-safe and touch only the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The starter may have gone before prctl: then no signal would ever come.
            if libc::getppid() != starter {
                libc::_exit(1);
            }
            Ok(())
        })
    }
}

/// Ends what earlier, killed runs left, once per test process: our own processes whose
/// command line names a scratch directory of a test process that is gone (with their process
/// group when its leader is gone too or is one of them); the orphaned process groups whose
/// leaders' pids such a directory holds in a `*.pid` file (nginx's workers and Apache's
/// children name nothing, and run as another user); then those directories. Only directories
/// we own are read (not symlinks), and what live runs use is spared.
pub fn end_what_dead_runs_left_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(end_what_dead_runs_left);
}

/// [`end_what_dead_runs_left_once`], every time.
pub fn end_what_dead_runs_left() {
    let temp = std::env::temp_dir();
    let needle = temp.join(SCRATCH).into_os_string();
    let needle = needle.as_encoded_bytes();
    // SAFETY: geteuid(2) and getpgrp(2) have no preconditions.
    let (uid, ours) = unsafe { (libc::geteuid(), libc::getpgrp()) };
    let processes = live_processes();
    let leader_gone = |group: i32| !processes.iter().any(|&(pid, _, _)| pid == group);
    let names_a_dead_run = |pid: i32| {
        let owned = std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == uid);
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        owned
            && cmdline
                .windows(needle.len())
                .enumerate()
                .filter(|(_, w)| w == &needle)
                .filter_map(|(i, _)| {
                    let rest = &cmdline[i + needle.len()..];
                    let end = rest.iter().position(|&b| b == b'/' || b == 0);
                    owner(&rest[..end.unwrap_or(rest.len())])
                })
                .any(|owner| !alive(owner))
    };
    let end_group = |group: i32| {
        // SAFETY: kill(2) on a process group whose leader was a dead run's.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    };
    for &(pid, _, group) in &processes {
        if !names_a_dead_run(pid) {
            continue;
        }
        // A group is the run's own when its leader (chromedriver, say) is gone or is one of
        // these; otherwise it is whoever started the process, so spare it.
        if group > 1 && group != ours && (leader_gone(group) || names_a_dead_run(group)) {
            end_group(group);
        }
        // SAFETY: kill(2) on our own process that names a dead run's scratch directory.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let Ok(entries) = std::fs::read_dir(&temp) else {
        return;
    };
    for entry in entries.map_while(Result::ok) {
        let name = entry.file_name();
        let Some(rest) = name.as_encoded_bytes().strip_prefix(SCRATCH.as_bytes()) else {
            continue;
        };
        if owner(rest).is_none_or(alive) {
            continue;
        }
        // symlink_metadata: a link here could point anywhere.
        let ours_dir = std::fs::symlink_metadata(entry.path())
            .is_ok_and(|m| m.file_type().is_dir() && m.uid() == uid);
        if !ours_dir {
            continue;
        }
        for file in std::fs::read_dir(entry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if file.path().extension().is_some_and(|e| e == "pid") {
                let leader = std::fs::read_to_string(file.path()).unwrap_or_default();
                // Only an orphaned group: while a group has members its id cannot be given
                // to a new process, so a live group with a dead leader is the one we left.
                if let Ok(leader) = leader.trim().parse::<i32>() {
                    let group_lives = processes.iter().any(|&(_, _, g)| g == leader);
                    if leader > 1 && leader != ours && group_lives && leader_gone(leader) {
                        end_group(leader);
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// The test process in a scratch name's `{what}-{pid}-{n}` (what may hold dashes).
fn owner(name: &[u8]) -> Option<i32> {
    let name = std::str::from_utf8(name).ok()?;
    let mut parts = name.rsplitn(3, '-');
    parts.next()?.parse::<u64>().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next()?;
    Some(pid)
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Every live process as (pid, command name, process group), from /proc.
pub fn live_processes() -> Vec<(i32, String, i32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().map_while(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Some(Stat { name, group, .. }) = stat(pid).filter(Stat::running) {
            found.push((pid, name, group));
        }
    }
    found
}

/// Whether `pid` is a live process: there, and not a zombie.
pub fn running(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.running())
}

/// What /proc/PID/stat says of a process that matters here.
struct Stat {
    name: String,
    state: char,
    group: i32,
}

impl Stat {
    /// A zombie is already dead; its parent just has not reaped it yet.
    fn running(&self) -> bool {
        self.state != 'Z'
    }
}

fn stat(pid: i32) -> Option<Stat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp …": the name may hold spaces, so split after ')'.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let mut fields = stat.get(close + 2..)?.split(' ');
    let state = fields.next()?.chars().next()?;
    let group = fields.nth(1)?.parse().ok()?;
    Some(Stat {
        name: stat[open + 1..close].to_string(),
        state,
        group,
    })
}
