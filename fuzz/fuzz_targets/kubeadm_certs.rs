#![no_main]
// What this covers: the doc comment of kubeboot::fuzzing::kubeadm_certs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kubeboot::fuzzing::kubeadm_certs(data);
});
