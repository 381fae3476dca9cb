#![no_main]
// What this covers: the doc comment of kubeboot::fuzzing::init_config.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kubeboot::fuzzing::init_config(data);
});
