//! The floor: what this machine costs to push the same bytes to the same number of
//! loopback sockets with no server logic at all. A process of its own (so its CPU time is
//! its alone) that accepts connections, reads and ignores each request, answers a fixed
//! head, and on each `<seq>` line on stdin formats one event and writes it to every socket
//! in a plain loop.

use std::io::{self, BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::quote::{self, WIDTH};
use crate::workload::{event_data, parse_name, Universe, SNAPSHOT_CENTS};

pub fn run() -> io::Result<()> {
    // The same backlog as tickerd's listener (std's bind asks for 128, which a ramp of
    // thousands overflows: dropped SYNs come back only seconds later).
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(4096)?;
    let listener: TcpListener = socket.into();
    println!("LISTEN {}", listener.local_addr()?);
    io::stdout().flush()?;
    let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let accepted = sockets.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_nodelay(true);
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req);
            if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
                .is_ok()
                && s.set_nonblocking(true).is_ok()
            {
                accepted.lock().unwrap().push(s);
            }
        }
    });
    for line in io::stdin().lock().lines() {
        let line = line?;
        let Ok(seq) = line.trim().parse::<u64>() else {
            break; // STOP or EOF
        };
        // The same shape and size as tickerd's events: a 16-digit id, a price.
        let event = format!("id: {}\ndata: {seq}.00\n\n", 1_700_000_000_000_000 + seq);
        let mut sockets = sockets.lock().unwrap();
        for s in sockets.iter_mut() {
            let _ = s.write(event.as_bytes());
        }
    }
    Ok(())
}

/// The floor of the many-symbol workload: one `write` per delivered update. Each connection
/// asks for its symbols (`GET /ticker?symbols=S0001,S0042`) and gets their snapshot; each
/// `<cents> <symbol> <symbol>…` line on stdin is a batch, and for each of its updates, in
/// order, the event is formatted once and written to every subscriber of that symbol in a
/// plain loop. No conflation and no queue: a socket that would block loses the event (the
/// bench then counts that client as stale).
///
/// Quotes (`quote`): the snapshot carries each symbol's whole record, and each update's
/// event the fields it sets (`<value> <symbol>:<fields>…` lines), as tickerd's events carry
/// what changed.
///
/// Stdin is read by a thread of its own, so the coordinator never waits on this process.
pub fn run_multi(symbols: usize, quote: bool) -> io::Result<()> {
    let universe = Universe::new(symbols);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(4096)?;
    let listener: TcpListener = socket.into();
    println!("LISTEN {}", listener.local_addr()?);
    io::stdout().flush()?;
    type Joined = Vec<(TcpStream, Vec<u32>)>;
    let joined: Arc<Mutex<Joined>> = Arc::default();
    let accepted = joined.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_nodelay(true);
            let Some(chosen) = read_choice(&mut s) else {
                continue;
            };
            // The snapshot: each symbol at its price before any publish, ids below any
            // update's.
            let mut head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n".to_vec();
            for (i, &sym) in chosen.iter().enumerate() {
                let name = universe.name(sym);
                let data = match quote {
                    true => quote::event_data(&name, sym, quote::ALL, &[quote::INITIAL; WIDTH]),
                    false => event_data(&name, SNAPSHOT_CENTS),
                };
                head.extend_from_slice(format!("id: {}\ndata: {data}\n\n", i + 1).as_bytes());
            }
            if s.write_all(&head).is_ok() && s.set_nonblocking(true).is_ok() {
                accepted.lock().unwrap().push((s, chosen));
            }
        }
    });
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut sockets: Vec<TcpStream> = Vec::new();
    let mut subscribers: Vec<Vec<usize>> = vec![Vec::new(); symbols];
    let mut id = 1_700_000_000_000_000u64;
    for line in rx {
        let mut words = line.split_whitespace();
        let Some(Ok(cents)) = words.next().map(str::parse::<u64>) else {
            break; // STOP
        };
        for (s, chosen) in joined.lock().unwrap().drain(..) {
            for &sym in &chosen {
                subscribers[sym as usize].push(sockets.len());
            }
            sockets.push(s);
        }
        for word in words {
            // `<symbol>` or `<symbol>:<fields>`.
            let (sym, mask) = match word.split_once(':') {
                Some((s, m)) => (s.parse::<u32>(), m.parse::<u8>().ok()),
                None => (word.parse::<u32>(), None),
            };
            let Ok(sym) = sym else { continue };
            let Some(subs) = subscribers.get(sym as usize) else {
                continue;
            };
            id += 1;
            let name = universe.name(sym);
            let data = match mask {
                Some(mask) => quote::event_data(&name, sym, mask, &[cents; WIDTH]),
                None => event_data(&name, cents),
            };
            let event = format!("id: {id}\ndata: {data}\n\n");
            for &i in subs {
                let _ = sockets[i].write(event.as_bytes());
            }
        }
    }
    Ok(())
}

/// The symbols a stream request asks for (`symbols=` in its target), read blocking.
fn read_choice(s: &mut TcpStream) -> Option<Vec<u32>> {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 64 * 1024 {
        let n = s.read(&mut buf).ok().filter(|&n| n > 0)?;
        req.extend_from_slice(&buf[..n]);
    }
    let line = req.split(|&b| b == b'\r').next()?;
    let target = line.split(|&b| b == b' ').nth(1)?;
    let query = target.splitn(2, |&b| b == b'?').nth(1)?;
    let list = query
        .split(|&b| b == b'&')
        .find_map(|p| p.strip_prefix(b"symbols="))?;
    list.split(|&b| b == b',').map(parse_name).collect()
}
