//! The floor: what this machine costs to push the same bytes to the same number of
//! loopback sockets with no server logic at all. A process of its own (so its CPU time is
//! its alone) that accepts connections, reads and ignores each request, answers a fixed
//! head, and on each `<seq>` line on stdin formats one event and writes it to every socket
//! in a plain loop.

use std::io::{self, BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

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
