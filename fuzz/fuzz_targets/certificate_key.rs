#![no_main]
// What this covers: the doc comment of kubeboot::fuzzing::certificate_key.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kubeboot::fuzzing::certificate_key(data);
});
