//! Urlencoded and multipart form decoding: see `tidings_fuzz::form`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tidings_fuzz::form::run(data);
});
