//! The service's request handler: see `tidings_fuzz::router`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tidings_fuzz::router::run(data);
});
