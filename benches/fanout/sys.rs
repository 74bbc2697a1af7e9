//! What the bench reads from the kernel: a clock shared by all its processes, and a
//! process's CPU time and resident memory.

use std::time::Duration;

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process on the machine, so the
/// coordinator's publish times and the workers' arrival times compare directly.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the struct passed.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time of a process so far, in nanoseconds: the sum over its threads of the
/// scheduler's run time (`/proc/<pid>/task/<tid>/schedstat`, first field), far finer than the
/// 10 ms ticks of `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// Resident set size in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Makes a child stop with the bench, whatever kills the bench (for `Command::pre_exec`).
/// SIGTERM rather than SIGKILL: nginx's master then stops its worker, and tickerd removes
/// its Unix socket.
pub fn die_with_parent() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on the calling process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    Ok(())
}

/// The machine's load average over 1, 5 and 15 minutes (`/proc/loadavg`), as text.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The kernel's count of packets dropped because a CPU's input backlog was full
/// (`/proc/net/softnet_stat`, second column, summed over CPUs), and of TCP segments
/// retransmitted (`/proc/net/snmp`, `Tcp: RetransSegs`). On loopback a dropped packet comes
/// back only with a retransmission, at least 200 ms later (the minimum RTO): a few of
/// them make a latency tail that no server caused, so the bench shows both.
pub fn net_losses() -> (u64, u64) {
    let drops = std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .sum();
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let tcp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Tcp:")).collect();
    let retrans = match tcp.as_slice() {
        [names, values, ..] => names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == "RetransSegs")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0),
        _ => 0,
    };
    (drops, retrans)
}
