#![no_main]
// What this covers: the doc comment of kubeboot::fuzzing::join_config.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kubeboot::fuzzing::join_config(data);
});
