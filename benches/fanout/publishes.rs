//! Publishes one at a time, as a feed handler sends them (each when the last was answered):
//! on one kept-alive connection, against each on a connection of its own (`Connection:
//! close`, the answer read to tickerd's close, as the workloads' publishers do), to one
//! tickerd over HTTP with no streams. The two ways alternate in rounds, each round's first
//! way alternating too, so that drift on a shared machine hits both alike; the figure is the
//! ratio of their rates, with tickerd's CPU per publish each way.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::feeder::read_answer;
use crate::stats::round;
use crate::sys;
use crate::target::{self, Via, TOKEN};

/// Rounds of each way.
const ROUNDS: u64 = 10;
const TIMEOUT: Duration = Duration::from_secs(10);

/// One way of publishing: its publishes, how long they took, tickerd's CPU meanwhile.
#[derive(Debug, Default, Clone)]
pub struct Way {
    pub publishes: u64,
    pub elapsed: Duration,
    pub cpu: Duration,
    /// Answers other than 200.
    pub failed: u64,
}

impl Way {
    pub fn per_s(&self) -> f64 {
        self.publishes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn cpu_us_per_publish(&self) -> f64 {
        self.cpu.as_nanos() as f64 / 1e3 / self.publishes.max(1) as f64
    }
}

#[derive(Debug, Default, Clone)]
pub struct Figures {
    pub kept_alive: Way,
    pub connection_each: Way,
    /// Connections tickerd accepted meanwhile (its two scrapes aside): one for every kept-alive
    /// publish, and one per publish of the other way.
    pub accepted: u64,
}

impl Figures {
    /// How many times as many publishes a second one kept-alive connection carries.
    pub fn ratio(&self) -> f64 {
        self.kept_alive.per_s() / self.connection_each.per_s().max(1e-9)
    }

    /// Every publish answered 200, and the kept-alive ones on one connection.
    pub fn passes(&self) -> bool {
        let (k, e) = (&self.kept_alive, &self.connection_each);
        k.failed == 0
            && e.failed == 0
            && k.publishes > 0
            && k.publishes == e.publishes
            && self.accepted == e.publishes + 1
    }
}

fn request(price: &str, close: bool) -> String {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!(
        "POST /publish HTTP/1.1\r\nHost: bench\r\n{connection}Authorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n{price}",
        price.len()
    )
}

/// A publish on a connection of its own; whether it was answered 200.
fn on_a_connection_of_its_own(addr: SocketAddr, price: &str) -> io::Result<bool> {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.write_all(request(price, true).as_bytes())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    Ok(answer.starts_with(b"HTTP/1.1 200"))
}

/// `/metrics`' `tickerd_connections_accepted_total{listener="http"}`.
fn accepted(addr: SocketAddr) -> io::Result<u64> {
    let samples = target::metrics(addr).ok_or_else(|| io::Error::other("no /metrics"))?;
    let name = "tickerd_connections_accepted_total{listener=\"http\"}";
    target::metric(&samples, name)
        .map(|v| v as u64)
        .ok_or_else(|| io::Error::other(format!("no {name}")))
}

/// `publishes` each way, to a tickerd of its own.
pub fn run(publishes: u64) -> io::Result<Figures> {
    let sys = target::tickerd(Via::Http, false)?;
    let addr = sys.tickerd_http[0];
    let pid = sys.procs[0].pid();
    let rounds = ROUNDS.min(publishes).max(1);
    let before = accepted(addr)?;
    let kept = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    kept.set_nodelay(true)?;
    kept.set_read_timeout(Some(TIMEOUT))?;
    let mut answers = BufReader::new(kept.try_clone()?);
    let mut kept = kept;
    let mut f = Figures::default();
    let mut seq = 0u64;
    for round in 0..rounds {
        // This round's share of the publishes (the first rounds take the remainder).
        let n = publishes / rounds + u64::from(round < publishes % rounds);
        for kept_alive in [round % 2 == 0, round % 2 == 1] {
            let way = match kept_alive {
                true => &mut f.kept_alive,
                false => &mut f.connection_each,
            };
            let (start, cpu) = (Instant::now(), sys::cpu_time(pid));
            for _ in 0..n {
                seq += 1;
                let price = format!("{}.{:02}", 1 + seq / 100, seq % 100);
                let ok = match kept_alive {
                    true => {
                        kept.write_all(request(&price, false).as_bytes())?;
                        read_answer(&mut answers)? == 200
                    }
                    false => on_a_connection_of_its_own(addr, &price)?,
                };
                way.failed += u64::from(!ok);
            }
            way.elapsed += start.elapsed();
            way.cpu += sys::cpu_time(pid).saturating_sub(cpu);
            way.publishes += n;
        }
    }
    // The second scrape counts itself.
    f.accepted = accepted(addr)?.saturating_sub(before + 1);
    Ok(f)
}

/// The figure's line and its JSON line.
pub fn print(f: &Figures) {
    let (k, e) = (&f.kept_alive, &f.connection_each);
    println!(
        "publishes one at a time (each sent when the last was answered), {} each way in {} \
         alternating rounds: {:.0}/s on one kept-alive connection ({:.1} µs of tickerd's CPU \
         each), {:.0}/s on a connection each ({:.1} µs): {:.2}×",
        k.publishes,
        ROUNDS.min(k.publishes).max(1),
        k.per_s(),
        k.cpu_us_per_publish(),
        e.per_s(),
        e.cpu_us_per_publish(),
        f.ratio()
    );
    let way = |w: &Way| {
        json!({
            "publishes": w.publishes,
            "per_s": round(w.per_s(), 1),
            "cpu_us_per_publish": round(w.cpu_us_per_publish(), 2),
            "failed": w.failed,
        })
    };
    println!(
        "{}",
        json!({
            "publishes_one_at_a_time": {
                "kept_alive": way(k),
                "connection_each": way(e),
                "ratio": round(f.ratio(), 2),
                "connections_accepted": f.accepted,
            }
        })
    );
}
