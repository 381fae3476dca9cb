//! The fuzz corpus as plain stable tests: every seed in `fuzz/corpus/<target>/` and
//! every saved crash in `fuzz/regressions/<target>/` goes through the same entry point
//! the `cargo fuzz` target uses (`kubeboot::fuzzing`). A panic fails the test with the
//! file's name; the specific errors the crashes now get are in `tests/fuzz_regressions.rs`.

use kubeboot::fuzzing::{TARGETS, target};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Files of `dir/<target>/`, sorted; none when the directory is missing.
fn inputs(dir: &str, target: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else {
        return vec![];
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// Runs one input and turns a panic into a failure that names the file.
fn run(target: &str, path: &Path) -> bool {
    let data = std::fs::read(path).expect("a readable input");
    let run = target_fn(target);
    std::panic::catch_unwind(|| run(&data)).unwrap_or_else(|_| {
        panic!(
            "fuzz target {target} panicked on {}; reproduce with `cargo +nightly fuzz run {target} {}`",
            path.display(),
            path.display()
        )
    })
}

fn target_fn(name: &str) -> fn(&[u8]) -> bool {
    target(name).expect("a known target").run
}

#[test]
fn every_target_has_a_fuzz_binary_and_seeds_it_accepts() {
    for t in TARGETS {
        let bin = fuzz_dir()
            .join("fuzz_targets")
            .join(format!("{}.rs", t.name));
        assert!(bin.is_file(), "no {}", bin.display());
        let seeds = inputs("corpus", t.name);
        assert!(!seeds.is_empty(), "no seeds in fuzz/corpus/{}", t.name);
        let accepted = seeds.iter().filter(|p| run(t.name, p)).count();
        assert!(
            accepted > 0,
            "{}: none of its {} seeds gets past the parser; the fuzzer would start from nothing",
            t.name,
            seeds.len()
        );
    }
}

#[test]
fn no_stray_corpus_or_target() {
    // A renamed target must take its corpus, regressions and binary with it.
    for dir in ["corpus", "regressions", "fuzz_targets"] {
        let Ok(rd) = std::fs::read_dir(fuzz_dir().join(dir)) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            let stem = p.file_stem().unwrap().to_string_lossy().to_string();
            assert!(
                target(&stem).is_some(),
                "fuzz/{dir}/{stem} belongs to no target in kubeboot::fuzzing::TARGETS"
            );
        }
    }
}

#[test]
fn saved_crashes_no_longer_panic() {
    let mut n = 0;
    for t in TARGETS {
        for p in inputs("regressions", t.name) {
            run(t.name, &p);
            n += 1;
        }
    }
    assert!(n > 0, "fuzz/regressions holds no saved crash");
}
