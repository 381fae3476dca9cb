#![no_main]
// What this covers: the doc comment of kubeboot::fuzzing::pem.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kubeboot::fuzzing::pem(data);
});
