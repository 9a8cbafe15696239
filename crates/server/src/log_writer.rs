//! Log lines are written to stderr by a thread of their own: a request's worker formats its
//! line and hands it over, and never waits on the terminal, pipe or log collector behind
//! stderr. The queue is bounded; when it is full a worker waits (no line is dropped). The
//! guard drains the queue when the service stops, so the last lines are not lost.

use std::io::Write as _;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Lines that may wait for the writer thread.
const QUEUE: usize = 8192;

enum Message {
    Line(Vec<u8>),
    /// Everything sent before has been written: answer on this channel.
    Drain(SyncSender<()>),
}

/// The `MakeWriter` for the subscriber: each log event becomes one queued line.
#[derive(Clone)]
pub struct OffThreadStderr {
    queue: SyncSender<Message>,
}

/// Drains the queue when dropped.
pub struct Guard {
    queue: SyncSender<Message>,
}

/// Starts the writer thread. Falls back to `None` (write directly) if it cannot start.
pub fn start() -> Option<(OffThreadStderr, Guard)> {
    let (queue, lines) = sync_channel(QUEUE);
    std::thread::Builder::new()
        .name("tidings-log".into())
        .spawn(move || write_loop(&lines))
        .ok()?;
    Some((
        OffThreadStderr {
            queue: queue.clone(),
        },
        Guard { queue },
    ))
}

fn write_loop(lines: &Receiver<Message>) {
    let stderr = std::io::stderr();
    while let Ok(first) = lines.recv() {
        let mut out = stderr.lock();
        let mut next = Some(first);
        // Everything queued meanwhile goes out in one flush.
        while let Some(message) = next {
            match message {
                Message::Line(line) => {
                    let _ = out.write_all(&line);
                }
                Message::Drain(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            next = lines.try_recv().ok();
        }
        let _ = out.flush();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let (done, drained) = sync_channel(1);
        if self.queue.send(Message::Drain(done)).is_ok() {
            let _ = drained.recv_timeout(std::time::Duration::from_secs(2));
        }
    }
}

/// One log event's bytes, queued when the subscriber is done with it.
pub struct Line {
    bytes: Vec<u8>,
    queue: SyncSender<Message>,
}

impl std::io::Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if !self.bytes.is_empty() {
            let bytes = std::mem::take(&mut self.bytes);
            if let Err(std::sync::mpsc::SendError(Message::Line(bytes))) =
                self.queue.send(Message::Line(bytes))
            {
                // The writer thread is gone: write it here rather than lose it.
                let _ = std::io::stderr().write_all(&bytes);
            }
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for OffThreadStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            bytes: Vec::with_capacity(256),
            queue: self.queue.clone(),
        }
    }
}
