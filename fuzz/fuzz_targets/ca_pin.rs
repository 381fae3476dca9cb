#![no_main]
// What this covers: the doc comment of kubeboot::fuzzing::ca_pin.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kubeboot::fuzzing::ca_pin(data);
});
