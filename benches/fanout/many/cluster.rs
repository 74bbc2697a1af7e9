//! A `--redis` system: tickerd's instances behind lighttpd's balancing conf, where lighttpd
//! put the streams, and the system's CPU summed by role (tickerd's instances, Redis,
//! lighttpd). The table that compares the clusters is `redis_report`'s.

use std::net::SocketAddr;

use serde_json::{json, Value};

use crate::procs::ProcFigures;
use crate::stats::round;
use crate::target;

/// tickerd behind lighttpd's balancing conf (`--redis`): its instances, and where lighttpd
/// put the streams.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub instances: usize,
    /// Sharing a Redis (else one process on its own: the baseline).
    pub redis: bool,
    /// Streams open on each instance once every client was in.
    pub streams: Vec<u64>,
}

impl Cluster {
    /// Counts each instance's open streams (`tickerd_clients` parked or writing), from
    /// their `/metrics`; 0 for an instance that does not answer.
    pub fn count_streams(&mut self, instances: &[SocketAddr]) {
        self.streams = instances
            .iter()
            .map(|&a| {
                let m = target::metrics(a).unwrap_or_default();
                ["parked", "writing"]
                    .iter()
                    .filter_map(|s| {
                        target::metric(&m, &format!("tickerd_clients{{state=\"{s}\"}}"))
                    })
                    .sum::<f64>() as u64
            })
            .collect();
    }
}

/// A cluster's figures (`--redis`): CPU summed over the processes of each role.
#[derive(Debug, Clone)]
pub struct ClusterRow {
    pub cluster: Cluster,
    /// Every tickerd instance's CPU, summed, per update delivered to a client.
    pub tickerd_cpu_per_delivered_us: f64,
    /// Redis's CPU per update published, and per publish (one script call each).
    pub redis_cpu_per_update_us: Option<f64>,
    pub redis_cpu_per_publish_us: Option<f64>,
    /// lighttpd's CPU per update delivered.
    pub front_cpu_per_delivered_us: f64,
    /// Publishes (batches) made, and updates in them.
    pub publishes: u64,
    pub published: u64,
    /// Every tickerd instance's CPU, summed, in µs.
    pub tickerd_cpu_us: f64,
}

impl ClusterRow {
    /// A cluster's CPU by role: tickerd's instances summed per delivered update, Redis's
    /// per published update and per publish, lighttpd's per delivered update.
    pub fn new(
        cluster: Cluster,
        procs: &[ProcFigures],
        delivered: u64,
        published: u64,
        publishes: u64,
    ) -> ClusterRow {
        let cpu_of = |role: &dyn Fn(&str) -> bool| -> Option<f64> {
            let found: Vec<f64> = procs
                .iter()
                .filter(|p| role(&p.name))
                .map(ProcFigures::cpu_us)
                .collect();
            (!found.is_empty()).then(|| found.iter().sum())
        };
        let delivered = delivered.max(1) as f64;
        let redis = cpu_of(&|n| n == "redis");
        let tickerd = cpu_of(&|n| n.starts_with("tickerd")).unwrap_or(0.0);
        ClusterRow {
            tickerd_cpu_per_delivered_us: tickerd / delivered,
            redis_cpu_per_update_us: redis.map(|us| us / published.max(1) as f64),
            redis_cpu_per_publish_us: redis.map(|us| us / publishes.max(1) as f64),
            front_cpu_per_delivered_us: cpu_of(&|n| n == "lighttpd").unwrap_or(0.0) / delivered,
            publishes,
            published,
            tickerd_cpu_us: tickerd,
            cluster,
        }
    }

    pub fn updates_per_publish(&self) -> f64 {
        self.published as f64 / self.publishes.max(1) as f64
    }

    /// The `cluster` object of the row's JSON.
    pub fn json(&self) -> Value {
        json!({
            "instances": self.cluster.instances,
            "redis": self.cluster.redis,
            "streams_per_instance": self.cluster.streams,
            "publishes": self.publishes,
            "tickerd_cpu_us_per_delivered_update": round(self.tickerd_cpu_per_delivered_us, 4),
            "redis_cpu_us_per_update": self.redis_cpu_per_update_us.map(|v| round(v, 4)),
            "redis_cpu_us_per_publish": self.redis_cpu_per_publish_us.map(|v| round(v, 4)),
            "lighttpd_cpu_us_per_delivered_update": round(self.front_cpu_per_delivered_us, 4),
        })
    }
}
