#![no_main]
// What this covers: the doc comment of kubeboot::fuzzing::kubeconfig.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kubeboot::fuzzing::kubeconfig(data);
});
