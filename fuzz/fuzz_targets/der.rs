#![no_main]
// What this covers: the doc comment of kubeboot::fuzzing::der.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kubeboot::fuzzing::der(data);
});
