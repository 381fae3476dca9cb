#![no_main]
// What this covers: the doc comment of kubeboot::fuzzing::cluster_inventory.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kubeboot::fuzzing::cluster_inventory(data);
});
