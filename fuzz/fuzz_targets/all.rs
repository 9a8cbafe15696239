//! Every target in one binary: the environment variable `TIDINGS_FUZZ_TARGET` names the one a
//! run fuzzes (`cargo xtask fuzz` sets it); see `tidings_fuzz::run`.

#![no_main]

use std::sync::OnceLock;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static TARGET: OnceLock<String> = OnceLock::new();
    let target = TARGET.get_or_init(tidings_fuzz::target_from_env);
    tidings_fuzz::run(target, data);
});
