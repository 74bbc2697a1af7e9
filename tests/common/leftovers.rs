//! What a test run killed before its Drops could run (SIGKILL, Ctrl-C, a CI timeout) would
//! leave behind, and how the next run ends it. Servers a test starts die with it
//! ([`dies_with_its_starter`]); what they started in turn (Chromium's helpers, nginx's
//! workers, Apache's children) is found through the run's scratch directories, which are
//! named after the test process: `tickerd-{what}-{pid}-{n}` (see `super::TempDir`).

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

/// Ends what earlier, killed runs left: every process whose command line names a scratch
/// directory of a test process that is gone, with its process group; the process groups whose
/// leaders' pids such a directory holds in a `*.pid` file (nginx's workers name nothing);
/// then removes those directories. What live runs use is spared.
pub fn end_what_dead_runs_left() {
    let temp = std::env::temp_dir();
    let needle = temp.join(SCRATCH).into_os_string();
    let needle = needle.as_encoded_bytes();
    // SAFETY: getpgrp(2) has no preconditions.
    let ours = unsafe { libc::getpgrp() };
    let end_group = |group: i32| {
        if group > 1 && group != ours {
            // SAFETY: kill(2) on the process group of a dead run's server.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    };
    let processes = live_processes();
    for &(pid, _, group) in &processes {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let orphaned = cmdline
            .windows(needle.len())
            .enumerate()
            .filter(|(_, w)| w == &needle)
            .filter_map(|(i, _)| {
                let rest = &cmdline[i + needle.len()..];
                let end = rest.iter().position(|&b| b == b'/' || b == 0);
                owner(&rest[..end.unwrap_or(rest.len())])
            })
            .any(|owner| !alive(owner));
        if orphaned {
            end_group(group);
            // SAFETY: kill(2) on a process that names a dead run's scratch directory.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
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
        for file in std::fs::read_dir(entry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if file.path().extension().is_some_and(|e| e == "pid") {
                let leader = std::fs::read_to_string(file.path()).unwrap_or_default();
                if let Ok(leader) = leader.trim().parse::<i32>() {
                    if processes.iter().any(|&(_, _, g)| g == leader) {
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
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp …": the name may hold spaces, so split after ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // A zombie is already dead; its parent just has not reaped it yet.
        if fields.first() == Some(&"Z") {
            continue;
        }
        if let Some(group) = fields.get(2).and_then(|g| g.parse().ok()) {
            found.push((pid, stat[open + 1..close].to_string(), group));
        }
    }
    found
}
