#![no_main]
// What this covers: the doc comment of kubeboot::fuzzing::bootstrap_token.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kubeboot::fuzzing::bootstrap_token(data);
});
