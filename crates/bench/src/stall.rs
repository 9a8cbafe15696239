//! Slowloris: connections that never finish their request head, held open on a thread of their
//! own while the load generator measures normal requests.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The stalled connections and the thread that keeps them open.
pub struct Stalled {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

/// Opens stalled connection `index`: a third send part of a request head, a third one byte of
/// one (still ambiguous between HTTP/1.1 and h2c), a third nothing.
fn open(addr: SocketAddr, index: usize) -> Option<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    let start: &[u8] = match index % 3 {
        0 => b"POST /v2/inbound-webhooks/delivery-providers/bench/sendgrid HTTP/1.1\r\nHost: x\r\n",
        1 => b"P",
        _ => b"",
    };
    stream.write_all(start).ok()?;
    stream.set_nonblocking(true).ok()?;
    Some(stream)
}

impl Stalled {
    /// Holds `count` stalled connections to `addr` open until [`release`](Self::release),
    /// reopening each one the server closes.
    pub fn hold(addr: SocketAddr, count: usize) -> Stalled {
        let stop = Arc::new(AtomicBool::new(false));
        if count == 0 {
            return Stalled { stop, thread: None };
        }
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut streams: Vec<Option<TcpStream>> = (0..count).map(|i| open(addr, i)).collect();
            let mut reopened = 0u64;
            let mut buf = [0u8; 1024];
            while !flag.load(Ordering::Relaxed) {
                for (index, slot) in streams.iter_mut().enumerate() {
                    let closed = match slot {
                        Some(stream) => match stream.read(&mut buf) {
                            Ok(0) => true,
                            // A 408 or 503 answer: the server is closing it.
                            Ok(_) => true,
                            Err(err) => err.kind() != std::io::ErrorKind::WouldBlock,
                        },
                        None => true,
                    };
                    if closed {
                        reopened += 1;
                        *slot = open(addr, index);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            reopened
        });
        Stalled {
            stop,
            thread: Some(thread),
        }
    }

    /// Closes them all; returns how many the server had closed meanwhile.
    pub fn release(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or(0)
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
