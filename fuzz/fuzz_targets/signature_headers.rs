//! Signature headers and the helpers that read them: see `tidings_fuzz::signature_headers`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tidings_fuzz::signature_headers::run(data);
});
