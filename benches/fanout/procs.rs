//! The processes of a system under test, sampled at the marks of a run: RSS before the
//! clients come, once they are all in (when CPU starts counting), halfway through
//! publishing, and at the end; and the figures per client and per delivered event made of
//! those samples, the same for every workload.

use std::time::Duration;

use crate::stats::round;
use crate::sys;

/// One measured process of a system.
#[derive(Debug, Default, Clone)]
pub struct ProcFigures {
    pub name: String,
    /// CPU used from the moment every client was in until the end of the measured time.
    pub cpu: Duration,
    /// RSS in KiB: before the clients came, once all were in, halfway through publishing
    /// (growth after it is growth that does not level off), at the end.
    pub rss_before: u64,
    pub rss_connected: u64,
    pub rss_mid: u64,
    pub rss_end: u64,
}

impl ProcFigures {
    pub fn cpu_us(&self) -> f64 {
        self.cpu.as_nanos() as f64 / 1e3
    }

    /// CPU µs per event (or update) delivered to a client; 0 if none was.
    pub fn cpu_us_per(&self, delivered: u64) -> f64 {
        if delivered == 0 {
            return 0.0;
        }
        self.cpu_us() / delivered as f64
    }

    /// RSS growth per connected client, in bytes, from before the clients came until all
    /// were in.
    pub fn rss_bytes_per_client(&self, connected: u64) -> f64 {
        (self.rss_connected.saturating_sub(self.rss_before) * 1024) as f64 / connected.max(1) as f64
    }

    /// RSS growth in KiB while measured: over the whole time, and over its second half.
    pub fn rss_growth_kib(&self) -> (i64, i64) {
        (
            self.rss_end as i64 - self.rss_connected as i64,
            self.rss_end as i64 - self.rss_mid as i64,
        )
    }

    /// Its figures as a JSON object: `cpu` is the workload's CPU figure (its key and value,
    /// already per event or per update), the rest is every process's.
    pub fn json(&self, cpu: (&str, f64), connected: u64) -> serde_json::Value {
        let growth = self.rss_growth_kib();
        serde_json::json!({
            "process": self.name,
            cpu.0: cpu.1,
            "rss_bytes_per_client": round(self.rss_bytes_per_client(connected), 1),
            "rss_growth_kib_while_publishing": growth.0,
            "rss_growth_kib_second_half": growth.1,
        })
    }
}

/// A system's measured processes (name, pid) and their samples so far.
pub struct Sampler {
    procs: Vec<(String, u32)>,
    rss_before: Vec<u64>,
    rss_connected: Vec<u64>,
    rss_mid: Vec<u64>,
    cpu_before: Vec<Duration>,
}

impl Sampler {
    /// Takes the first sample: before any client comes.
    pub fn before(procs: Vec<(String, u32)>) -> Sampler {
        let rss_before = rss(&procs);
        Sampler {
            procs,
            rss_before,
            rss_connected: Vec::new(),
            rss_mid: Vec::new(),
            cpu_before: Vec::new(),
        }
    }

    /// Every client is in: CPU starts counting.
    pub fn connected(&mut self) {
        self.rss_connected = rss(&self.procs);
        self.cpu_before = self
            .procs
            .iter()
            .map(|(_, pid)| sys::cpu_time(*pid))
            .collect();
    }

    /// Halfway through publishing.
    pub fn halfway(&mut self) {
        self.rss_mid = rss(&self.procs);
    }

    /// The end of the measured time: each process's figures.
    pub fn figures(&self) -> Vec<ProcFigures> {
        self.procs
            .iter()
            .enumerate()
            .map(|(i, (name, pid))| ProcFigures {
                name: name.clone(),
                cpu: sys::cpu_time(*pid).saturating_sub(self.cpu_before[i]),
                rss_before: self.rss_before[i],
                rss_connected: self.rss_connected[i],
                rss_mid: self
                    .rss_mid
                    .get(i)
                    .copied()
                    .unwrap_or(self.rss_connected[i]),
                rss_end: sys::rss_kib(*pid),
            })
            .collect()
    }
}

fn rss(procs: &[(String, u32)]) -> Vec<u64> {
    procs.iter().map(|(_, pid)| sys::rss_kib(*pid)).collect()
}
