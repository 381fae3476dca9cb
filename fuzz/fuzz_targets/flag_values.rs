#![no_main]
// What this covers: the doc comment of kubeboot::fuzzing::flag_values.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kubeboot::fuzzing::flag_values(data);
});
