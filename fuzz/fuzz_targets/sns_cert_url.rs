//! The SNS trust rule for `SigningCertURL` and `SubscribeURL`: see `tidings_fuzz::sns_cert_url`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tidings_fuzz::sns_cert_url::run(data);
});
