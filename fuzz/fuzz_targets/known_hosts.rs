#![no_main]
// What this covers: the doc comment of kubeboot::fuzzing::known_hosts.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kubeboot::fuzzing::known_hosts(data);
});
