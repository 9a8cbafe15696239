//! Synthetic SendGrid events, shaped like the ones SendGrid posts, each one unique.

use std::fmt::Write as _;

/// The SendGrid events a message goes through, in the order they usually happen.
pub const KINDS: [&str; 3] = ["processed", "delivered", "open"];

/// The status each of [`KINDS`] normalizes to.
pub const STATUSES: [&str; 3] = ["sent", "delivered", "opened"];

/// Event number `n` is event `n % 3` of message `n / 3`.
pub fn message_of(n: u64) -> u64 {
    n / 3
}

/// Whether message ids are scattered (`TIDINGS_BENCH_RANDOM_IDS=true`), as real providers' ids
/// are, instead of counting up (`msg-{n}`), which keeps a message-keyed index local.
fn random_ids() -> bool {
    static RANDOM: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *RANDOM.get_or_init(|| {
        std::env::var("TIDINGS_BENCH_RANDOM_IDS").is_ok_and(|v| v == "true" || v == "1")
    })
}

/// A message number scattered over 64 bits (a bijection, so ids stay unique).
fn scatter(message: u64) -> u64 {
    let mut x = message.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Appends event `n` as one JSON object (about 330 bytes).
pub fn push_event(out: &mut String, n: u64) {
    let message = if random_ids() {
        scatter(message_of(n))
    } else {
        message_of(n)
    };
    let kind = (n % 3) as usize;
    let event = KINDS.get(kind).copied().unwrap_or("delivered");
    // Later kinds happen later, so the fold has an order to get right when they arrive shuffled.
    // Times follow the order of sending whatever the ids, as a provider's do.
    let timestamp = 1_764_201_600 + message_of(n) % 86_400 + kind as u64 * 7;
    let _ = write!(
        out,
        r#"{{"email":"user{message}@example.com","timestamp":{timestamp},"smtp-id":"<{message}@ismtpd-bench>","event":"{event}","category":["bench"],"sg_event_id":"ev-{n}","sg_message_id":"sgm{message}.filter0001.bench","id":"msg-{message}""#
    );
    match event {
        "delivered" => out.push_str(r#","response":"250 2.0.0 OK  queued as 1234""#),
        "open" => out.push_str(
            r#","useragent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64)","ip":"203.0.113.7","sg_machine_open":false"#,
        ),
        _ => {}
    }
    out.push('}');
}

/// A JSON array of the given events.
pub fn batch(events: impl IntoIterator<Item = u64>) -> String {
    let mut out = String::with_capacity(512);
    out.push('[');
    for (i, n) in events.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_event(&mut out, n);
    }
    out.push(']');
    out
}

/// A small, fast, seedable generator (xorshift64*), so runs need no random-number crate.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded; a zero seed is replaced.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Seeded from the clock and a salt.
    pub fn from_time(salt: u64) -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng::new(nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
