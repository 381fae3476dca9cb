//! Component command lines the way kubeadm builds them (`ArgumentsToCommand`): defaults,
//! with every default whose name the user also gives in `extraArgs` replaced by the user's
//! value(s), then sorted by name (and by value for a flag the user repeats, which v1beta4
//! allows on purpose).

use crate::config::v1beta4::Arg;
use std::collections::BTreeMap;

/// `--name=value` flags from kubeboot's defaults and the user's `extraArgs`.
pub fn command_flags(defaults: &BTreeMap<String, String>, overrides: &[Arg]) -> Vec<String> {
    let mut args: Vec<(&str, &str)> = overrides
        .iter()
        .map(|a| (a.name.as_str(), a.value.as_str()))
        .collect();
    for (name, value) in defaults {
        if !overrides.iter().any(|a| &a.name == name) {
            args.push((name, value));
        }
    }
    args.sort();
    args.into_iter()
        .map(|(n, v)| format!("--{n}={v}"))
        .collect()
}

/// The full command: the binary followed by [`command_flags`].
pub fn to_command(
    binary: &str,
    defaults: &BTreeMap<String, String>,
    overrides: &[Arg],
) -> Vec<String> {
    let mut cmd = vec![binary.to_string()];
    cmd.extend(command_flags(defaults, overrides));
    cmd
}

/// The value the user gave a flag in `extraArgs` (the last one when repeated).
pub(crate) fn user_value<'a>(overrides: &'a [Arg], name: &str) -> Option<&'a str> {
    overrides
        .iter()
        .rev()
        .find(|a| a.name == name)
        .map(|a| a.value.as_str())
}

/// Builds a default-flag map from pairs.
pub(crate) fn flags<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(n: &str, v: &str) -> Arg {
        Arg {
            name: n.into(),
            value: v.into(),
        }
    }

    #[test]
    fn overrides_replace_defaults_and_output_is_sorted() {
        let d = flags([
            ("secure-port", "6443".to_string()),
            ("allow-privileged", "true".to_string()),
        ]);
        let cmd = to_command(
            "x",
            &d,
            &[arg("secure-port", "7443"), arg("audit-log-maxage", "7")],
        );
        assert_eq!(
            cmd,
            [
                "x",
                "--allow-privileged=true",
                "--audit-log-maxage=7",
                "--secure-port=7443"
            ]
        );
        let rep = command_flags(&d, &[arg("v", "2"), arg("v", "1")]);
        assert_eq!(rep[2..], ["--v=1", "--v=2"]);
    }
}
